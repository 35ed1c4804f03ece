package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// writeJournal writes a valid journal of n runs (every 10th open) at path.
func writeJournal(t testing.TB, path string, n int) {
	t.Helper()
	j, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	bulkLoad(t, j, n, 10, nil)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

// rawUpdate changes a bbolt file behind the journal's back.
func rawUpdate(t testing.TB, path string, fn func(tx *bbolt.Tx) error) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// overwrite writes b at offset off of the file.
func overwrite(t testing.TB, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// pagesOf lists the pages of the given type ("leaf", "branch", "freelist", "free").
func pagesOf(t testing.TB, path, typ string) (ids []int, pageSize int) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bbolt.Tx) error {
		for id := 2; ; id++ {
			info, err := tx.Page(id)
			if err != nil || info == nil {
				return err
			}
			if info.Type == typ {
				ids = append(ids, id)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids, db.Info().PageSize
}

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// runsRootLoop points the first child of the runs bucket's root page back at that page:
// a cycle, which bbolt's cursors would descend without end.
func runsRootLoop(t *testing.T, path string) { runsLoop(t, path, false) }

// runsLastLoop does the same to the last child, the way to the newest run.
func runsLastLoop(t *testing.T, path string) { runsLoop(t, path, true) }

// runsMisfiled changes the key under which the runs bucket's root files its second
// child, so that the child no longer starts with the key it is filed under.
func runsMisfiled(t *testing.T, path string) {
	root, ps := runsRoot(t, path)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	e := int(root)*ps + pageHeaderSize + elemSize // element 1
	pos, ksize := binary.NativeEndian.Uint32(raw[e:]), binary.NativeEndian.Uint32(raw[e+4:])
	last := e + int(pos) + int(ksize) - 1
	overwrite(t, path, int64(last), []byte{raw[last] + 1}) // still between its neighbours
}

// runsRoot finds the runs bucket's root page, which must be a branch.
func runsRoot(t *testing.T, path string) (root uint64, pageSize int) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, PreLoadFreelist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bbolt.Tx) error {
		root = uint64(tx.Bucket(bucketRuns).RootPage())
		p, err := tx.Page(int(root))
		if err == nil && (p == nil || p.Type != "branch") {
			err = fmt.Errorf("runs root page %d is not a branch", root)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return root, db.Info().PageSize
}

func runsLoop(t *testing.T, path string, last bool) {
	root, ps := runsRoot(t, path)
	elem := int64(0)
	if last {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		elem = int64(binary.NativeEndian.Uint16(raw[int(root)*ps+10:])) - 1
	}
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], root)
	overwrite(t, path, int64(root)*int64(ps)+pageHeaderSize+elem*elemSize+8, b[:])
}

func TestOpenRefusesDamage(t *testing.T) {
	setBytes := func(b []byte) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	journalThen := func(n int, damage func(t *testing.T, path string)) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			writeJournal(t, path, n)
			damage(t, path)
		}
	}
	// bigJournalThen is journalThen above fullCheckBytes, where Open leaves the runs
	// bucket's leaves unread.
	bigJournalThen := func(damage func(t *testing.T, path string)) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			writeJournal(t, path, 30000)
			if size := fileSize(t, path); size <= fullCheckBytes {
				t.Fatalf("journal of %d bytes is not big", size)
			}
			damage(t, path)
		}
	}
	truncateTo := func(frac float64, pages int) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			size := fileSize(t, path)
			to := int64(float64(size) * frac)
			if pages > 0 {
				to = int64(pages * os.Getpagesize())
			}
			if err := os.Truncate(path, to); err != nil {
				t.Fatal(err)
			}
		}
	}
	raw := func(fn func(tx *bbolt.Tx) error) func(t *testing.T, path string) {
		return func(t *testing.T, path string) { rawUpdate(t, path, fn) }
	}
	onPages := func(typ string, b func(pageSize int) []byte) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			ids, ps := pagesOf(t, path, typ)
			if len(ids) == 0 {
				t.Fatalf("no %s page", typ)
			}
			overwrite(t, path, int64(ids[len(ids)/2]*ps), b(ps))
		}
	}

	cases := []struct {
		name   string
		make   func(t *testing.T, path string)
		schema bool   // want ErrSchema as well
		says   string // the message mentions this
	}{
		{"empty file", setBytes(nil), false, "empty"},
		{"a few bytes", setBytes([]byte("hello, journal")), false, "meta"},
		{"random bytes", setBytes(randomBytes(64<<10, 1)), false, "meta"},
		{"random page", setBytes(randomBytes(4096, 2)), false, "meta"},
		{"truncated at half", journalThen(2000, truncateTo(0.5, 0)), false, "truncated"},
		{"truncated to one page", journalThen(2000, truncateTo(0, 1)), false, ""},
		{"truncated to two pages", journalThen(2000, truncateTo(0, 2)), false, "truncated"},
		{"foreign bbolt file", raw(func(tx *bbolt.Tx) error {
			b, err := tx.CreateBucket([]byte("widgets"))
			if err != nil {
				return err
			}
			return b.Put([]byte("k"), []byte("v"))
		}), false, `"meta" bucket`},
		{"bbolt file without buckets", raw(func(tx *bbolt.Tx) error { return nil }), false, `"meta" bucket`},
		{"someone else's meta bucket", raw(func(tx *bbolt.Tx) error {
			b, err := tx.CreateBucket([]byte("meta"))
			if err != nil {
				return err
			}
			return b.Put([]byte("schema"), idKey(1))
		}), false, "format marker"},
		{"newer schema", journalThen(10, func(t *testing.T, path string) {
			rawUpdate(t, path, func(tx *bbolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySchema, idKey(SchemaVersion+1)) })
		}), true, "upgrade chaoscron"},
		{"schema zero", journalThen(10, func(t *testing.T, path string) {
			rawUpdate(t, path, func(tx *bbolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySchema, idKey(0)) })
		}), false, "schema version 0"},
		{"schema garbled", journalThen(10, func(t *testing.T, path string) {
			rawUpdate(t, path, func(tx *bbolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySchema, []byte("one")) })
		}), false, "schema"},
		{"open index missing", journalThen(10, func(t *testing.T, path string) {
			rawUpdate(t, path, func(tx *bbolt.Tx) error { return tx.DeleteBucket(bucketOpen) })
		}), false, "missing"},
		{"open index names a missing run", journalThen(10, func(t *testing.T, path string) {
			rawUpdate(t, path, func(tx *bbolt.Tx) error { return tx.Bucket(bucketOpen).Put(idKey(999), []byte("pending")) })
		}), false, "run 999"},
		{"open index names a closed run", journalThen(10, func(t *testing.T, path string) {
			rawUpdate(t, path, func(tx *bbolt.Tx) error { return tx.Bucket(bucketOpen).Put(idKey(2), []byte("pending")) })
		}), false, "run 2"},
		{"open run not JSON", journalThen(30, func(t *testing.T, path string) {
			rawUpdate(t, path, func(tx *bbolt.Tx) error { return tx.Bucket(bucketRuns).Put(idKey(11), []byte("{")) })
		}), false, "run 11"},
		{"open run's checksum wrong", journalThen(30, func(t *testing.T, path string) {
			rawUpdate(t, path, func(tx *bbolt.Tx) error {
				v := bytes.Clone(tx.Bucket(bucketRuns).Get(idKey(21)))
				v[len(v)/2] ^= 1
				return tx.Bucket(bucketRuns).Put(idKey(21), v)
			})
		}), false, "run 21: damaged record: checksum mismatch; it is an open run"},
		{"id sequence behind", journalThen(10, func(t *testing.T, path string) {
			rawUpdate(t, path, func(tx *bbolt.Tx) error { return tx.Bucket(bucketRuns).SetSequence(3) })
		}), false, "sequence"},
		{"halt switch garbled", journalThen(10, func(t *testing.T, path string) {
			rawUpdate(t, path, func(tx *bbolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyHalt, []byte("yes")) })
		}), false, "halt"},
		{"both meta pages damaged", journalThen(10, func(t *testing.T, path string) {
			ps := os.Getpagesize()
			overwrite(t, path, 16+56, []byte{0xff, 0xff})
			overwrite(t, path, int64(ps)+16+56, []byte{0xff, 0xff})
		}), false, "meta"},
		{"freelist page damaged", journalThen(2000, onPages("freelist", func(ps int) []byte { return randomBytes(ps, 3) })), false, "freelist"},
		{"leaf page zeroed", journalThen(2000, onPages("leaf", func(ps int) []byte { return make([]byte, ps) })), false, ""},
		{"branch page garbage", journalThen(2000, onPages("branch", func(ps int) []byte { return randomBytes(ps, 4) })), false, ""},
		{"root page garbage", journalThen(10, func(t *testing.T, path string) {
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			m, ok := readMeta(f, 0)
			m1, ok1 := readMeta(f, int64(os.Getpagesize()))
			f.Close()
			if !ok || (ok1 && m1.txid > m.txid) {
				m = m1
			}
			overwrite(t, path, int64(m.root*m.pageSize), randomBytes(int(m.pageSize), 5))
		}), false, "root page"},
		{"runs tree points back at itself", journalThen(2000, runsRootLoop), false, "tree"},
		{"runs tree loops at its last child", journalThen(2000, runsLastLoop), false, "reached twice"},
		{"page filed under the wrong key", journalThen(2000, runsMisfiled), false, "does not start with it"},
		{"runs tree loops in a big journal", bigJournalThen(runsRootLoop), false, "tree"},
		{"big journal loops at its last child", bigJournalThen(runsLastLoop), false, "reached twice"},
		{"run key not an id", journalThen(10, func(t *testing.T, path string) {
			rawUpdate(t, path, func(tx *bbolt.Tx) error { return tx.Bucket(bucketRuns).Put([]byte("abc"), []byte("{}")) })
		}), false, "not an id"},
		{"bucket nested in the runs", journalThen(10, func(t *testing.T, path string) {
			rawUpdate(t, path, func(tx *bbolt.Tx) error { _, err := tx.Bucket(bucketRuns).CreateBucket(idKey(99)); return err })
		}), false, "nested bucket"},
		{"a directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, false, "regular file"},
	}
	// A damaged open run: only a writable Open refuses it; a read-only one lists it.
	damagedOpen := map[string]uint64{"open run not JSON": 11, "open run's checksum wrong": 21}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "journal.db")
			c.make(t, path)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			var before string
			if fi.Mode().IsRegular() {
				before = fileSHA(t, path)
			}
			for _, ro := range []bool{false, true} {
				j, err := Open(path, Options{ReadOnly: ro, Timeout: 100 * time.Millisecond})
				if id := damagedOpen[c.name]; ro && id != 0 {
					if err != nil {
						t.Fatalf("read-only: %v", err)
					}
					if got := j.Damaged(); !slices.Equal(got, []uint64{id}) {
						t.Errorf("read-only: Damaged() = %v, want [%d]", got, id)
					}
					j.Close()
					continue
				}
				if err == nil {
					j.Close()
					t.Fatalf("read-only=%v: Open accepted it", ro)
				}
				if !errors.Is(err, ErrCorrupt) {
					t.Errorf("read-only=%v: %v, want ErrCorrupt", ro, err)
				}
				if c.schema != errors.Is(err, ErrSchema) {
					t.Errorf("read-only=%v: %v: ErrSchema is %v, want %v", ro, err, !c.schema, c.schema)
				}
				if !ro {
					t.Log(err)
				}
				if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.says) {
					t.Errorf("read-only=%v: message %q should name the file and say %q", ro, err, c.says)
				}
			}
			// A refused file is left as it was, for whoever looks at it next.
			if before != "" && fileSHA(t, path) != before {
				t.Error("a failed Open changed the file")
			}
		})
	}
}

// TestDamageWhileOpen damages every tree page of an open journal, then truncates the
// file under it (its memory map then faults with SIGBUS): every call must answer with
// ErrCorrupt, none may panic or crash the process, and Close must not hang.
func TestDamageWhileOpen(t *testing.T) {
	for _, how := range []string{"pages zeroed", "file truncated"} {
		t.Run(how, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "journal.db")
			writeJournal(t, path, 3000)
			j, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if how == "pages zeroed" {
				// pagesOf needs its own bbolt handle, which the lock forbids now: list
				// the pages from the journal's.
				var tree []int
				err := j.db.View(func(tx *bbolt.Tx) error {
					for id := 2; ; id++ {
						info, err := tx.Page(id)
						if err != nil || info == nil {
							return err
						}
						if info.Type == "leaf" || info.Type == "branch" {
							tree = append(tree, id)
						}
					}
				})
				if err != nil {
					t.Fatal(err)
				}
				ps := j.db.Info().PageSize
				for _, id := range tree {
					overwrite(t, path, int64(id*ps), make([]byte, ps))
				}
			} else {
				if err := os.Truncate(path, 3*int64(os.Getpagesize())); err != nil {
					t.Fatal(err)
				}
			}

			calls := map[string]func() error{
				"Get":         func() error { _, err := j.Get(1500); return err },
				"List":        func() error { _, err := j.List(Filter{Limit: 10}); return err },
				"OpenRuns":    func() error { _, err := j.OpenRuns(); return err },
				"Stats":       func() error { _, err := j.Stats(); return err },
				"Each":        func() error { return j.Each(func(Record) error { return nil }) },
				"Halted":      func() error { _, _, _, err := j.Halted(); return err },
				"Update":      func() error { _, err := j.Update(11, func(*Record) error { return nil }); return err },
				"Prune":       func() error { _, err := j.Prune(10, 0, t0); return err },
				"Begin":       func() error { r := newRecord("e"); return j.Begin(&r) },
				"Begin again": func() error { r := newRecord("e"); return j.Begin(&r) },
				"Compact":     func() error { return j.Compact(filepath.Join(t.TempDir(), "c.db")) },
			}
			for _, name := range []string{"Get", "List", "OpenRuns", "Stats", "Each", "Halted", "Update", "Prune", "Begin", "Begin again", "Compact"} {
				if err := calls[name](); !errors.Is(err, ErrCorrupt) {
					t.Errorf("%s: %v, want ErrCorrupt", name, err)
				}
			}
			done := make(chan error, 1)
			go func() { done <- j.Close() }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Close hangs after damage")
			}
		})
	}
}
