package journal

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// deleteRandomRuns deletes about one run in every `every` through bbolt directly, in
// several transactions, the first key of many a leaf among them: the deletes that make
// bbolt merge and rewrite pages and their parents' keys.
func deleteRandomRuns(t testing.TB, path string, every int, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, seed))
	for range 5 {
		rawUpdate(t, path, func(tx *bbolt.Tx) error {
			runs, open := tx.Bucket(bucketRuns), tx.Bucket(bucketOpen)
			var keys [][]byte
			c := runs.Cursor()
			for k, _ := c.First(); k != nil; k, _ = c.Next() {
				if rng.IntN(every) == 0 {
					keys = append(keys, bytes.Clone(k))
				}
			}
			for _, k := range keys {
				if err := runs.Delete(k); err != nil {
					return err
				}
				if err := open.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
	}
}

// killDuringBegins starts a child that Begins runs into the journal at path until it is
// SIGKILLed, after n of them: most likely in the middle of a commit.
func killDuringBegins(t *testing.T, path string, n int) {
	cmd := childCmd("begin-loop", path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(stdout)
	for range n {
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatalf("child stopped early: %v", err)
		}
	}
	_ = cmd.Process.Kill()
	_, _ = io.Copy(io.Discard, br)
	_ = cmd.Wait()
}

// TestEveryJournalPassesBothChecks makes journals every way this package writes them and
// asks bbolt's Check and checkFile (held to the writer's rule, the stricter) about each:
// both must accept it. Should a bbolt upgrade write pages that checkFile refuses, this
// fails rather than a user's agent at start-up.
func TestEveryJournalPassesBothChecks(t *testing.T) {
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }
	withJournal := func(t *testing.T, path string, fn func(j *Journal)) {
		j, err := Open(path, Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		fn(j)
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	}
	bulk := func(n, openEvery int) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			withJournal(t, path, func(j *Journal) { bulkLoad(t, j, n, openEvery, at) })
		}
	}
	cases := []struct {
		name string
		make func(t *testing.T, path string)
	}{
		{"new", func(t *testing.T, path string) { withJournal(t, path, func(*Journal) {}) }},
		{"begin and update", func(t *testing.T, path string) {
			withJournal(t, path, func(j *Journal) {
				for i := range 300 {
					r := newRecord(fmt.Sprintf("e%d", i%3))
					if err := j.Begin(&r); err != nil {
						t.Fatal(err)
					}
					if i%3 != 0 {
						if _, err := j.Update(r.ID, func(r *Record) error { r.Status, r.Cleanup = Succeeded, CleanupDone; return nil }); err != nil {
							t.Fatal(err)
						}
					}
				}
				if err := j.SetHalted(true, "test", t0); err != nil {
					t.Fatal(err)
				}
			})
		}},
		{"bulk-loaded", bulk(10_000, 100)},
		{"bulk-loaded past the full check", func(t *testing.T, path string) {
			bulk(30_000, 1000)(t, path)
			if size := fileSize(t, path); size <= fullCheckBytes {
				t.Fatalf("journal of %d bytes is not past the full check", size)
			}
		}},
		{"pruned by count", func(t *testing.T, path string) {
			bulk(5000, 50)(t, path)
			withJournal(t, path, func(j *Journal) {
				if _, err := j.Prune(1200, 0, at(5000)); err != nil {
					t.Fatal(err)
				}
			})
		}},
		{"pruned by age, then closed and pruned again", func(t *testing.T, path string) {
			bulk(5000, 7)(t, path)
			withJournal(t, path, func(j *Journal) {
				if _, err := j.Prune(0, 24*time.Hour, at(5000)); err != nil {
					t.Fatal(err)
				}
				open, err := j.OpenRuns()
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range open[:len(open)/2] {
					if _, err := j.Update(r.ID, func(r *Record) error { r.Status, r.Cleanup = Succeeded, CleanupDone; return nil }); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := j.Prune(100, 0, at(5000)); err != nil {
					t.Fatal(err)
				}
			})
		}},
		{"runs deleted here and there", func(t *testing.T, path string) {
			bulk(5000, 10)(t, path)
			deleteRandomRuns(t, path, 3, 1)
		}},
		{"compacted", func(t *testing.T, path string) {
			src := filepath.Join(t.TempDir(), "src.db")
			bulk(5000, 10)(t, src)
			deleteRandomRuns(t, src, 4, 2)
			withJournal(t, src, func(j *Journal) {
				if err := j.Compact(path); err != nil {
					t.Fatal(err)
				}
			})
		}},
		{"killed during commits", func(t *testing.T, path string) {
			bulk(3000, 10)(t, path)
			for round := range 3 {
				killDuringBegins(t, path, 40+round*37)
			}
		}},
		{"migrated from schema 1", func(t *testing.T, path string) {
			bulk(12_000, 100)(t, path)
			unsealAll(t, path)
			withJournal(t, path, func(*Journal) {}) // Open migrates
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "journal.db")
			c.make(t, path)
			// The open index as bbolt reads it, which checkFile must have read alike:
			// Open counts the open runs from it.
			var open []uint64
			db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			_ = db.View(func(tx *bbolt.Tx) error {
				return tx.Bucket(bucketOpen).ForEach(func(k, _ []byte) error {
					open = append(open, binary.BigEndian.Uint64(k))
					return nil
				})
			})
			db.Close()
			for _, writable := range []bool{true, false} {
				ck, err := ourCheck(t, path, writable)
				if err != nil {
					t.Fatalf("checkFile (writable=%v): %v", writable, err)
				}
				if len(ck.damaged) > 0 {
					t.Errorf("checkFile (writable=%v): damaged runs %v", writable, ck.damaged)
				}
				if !slices.Equal(ck.open, open) {
					t.Errorf("checkFile (writable=%v): open index %v, bbolt reads %v", writable, ck.open, open)
				}
			}
			if errs := bboltCheck(t, path); len(errs) > 0 {
				t.Fatalf("bbolt's Check: %v", errs)
			}
			for _, ro := range []bool{false, true} {
				j, err := Open(path, Options{ReadOnly: ro})
				if err != nil {
					t.Fatal(err)
				}
				if n, err := j.OpenCount(); err != nil || n != len(open) {
					t.Errorf("read-only=%v: OpenCount %d, %v; the index holds %d", ro, n, err, len(open))
				}
				if err := j.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
