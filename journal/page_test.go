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

// bboltCheck is bbolt's own verdict on the file at path: the errors of tx.Check on its
// last commit. The file must be free of cycles (checkFile passed): bbolt's Check
// recurses down a cycle until the stack runs out.
func bboltCheck(t testing.TB, path string) []error {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return []error{err}
	}
	defer db.Close()
	var errs []error
	err = db.View(func(tx *bbolt.Tx) error {
		ch := tx.Check()
		timeout := time.After(30 * time.Second) // generous: it takes milliseconds
		for {
			select {
			case err, ok := <-ch:
				if !ok {
					return nil
				}
				errs = append(errs, err)
			case <-timeout:
				return errors.New("bbolt's Check did not finish")
			}
		}
	})
	if err != nil {
		errs = append(errs, err)
	}
	return errs
}

// ourCheck is checkFile on the file at path, held to the writer's rule or the reader's.
func ourCheck(t testing.TB, path string, writable bool) (checked, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return checkFile(f, writable)
}

// TestPageDecodingMatchesBbolt decodes every page of a journal with page.go and compares
// it with what bbolt reads: the meta record, each page's header with bbolt's page info, and the key-value
// pairs of all leaves (inline buckets included) with what bbolt's cursors yield.
func TestPageDecodingMatchesBbolt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	writeJournal(t, path, 3000)
	deleteRandomRuns(t, path, 5, 3)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, PreLoadFreelist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ps := uint64(db.Info().PageSize)
	var ours, theirs []string
	pair := func(k, v []byte) string { return fmt.Sprintf("%x=%x", k, v) }
	var leaf func(b []byte, count uint64)
	leaf = func(b []byte, count uint64) {
		for i := range count {
			flags, k, v, ok := leafAt(b, i)
			if !ok {
				t.Fatalf("leaf element %d runs off its page", i)
			}
			if flags&bucketLeafFlag == 0 {
				ours = append(ours, pair(k, v))
			} else if root, inline, ok := bucketValue(v); ok && root == 0 {
				leaf(inline, parseHeader(inline).count)
			}
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := readMeta(f, 0)
	if m1, ok1 := readMeta(f, int64(ps)); ok1 && (!ok || m1.txid > m.txid) {
		m, ok = m1, true
	}
	f.Close()
	err = db.View(func(tx *bbolt.Tx) error {
		if !ok || m.pageSize != ps || m.txid != uint64(tx.ID()) || int64(m.pgid*ps) != tx.Size() {
			t.Errorf("meta decoded as %+v (ok %v); bbolt: page size %d, txid %d, size %d", m, ok, ps, tx.ID(), tx.Size())
		}
		for id := 2; ; id++ {
			info, err := tx.Page(id)
			if err != nil || info == nil {
				break
			}
			if info.Type == "free" {
				continue
			}
			b := raw[uint64(id)*ps:]
			h := parseHeader(b)
			types := map[uint16]string{branchPageFlag: "branch", leafPageFlag: "leaf", freelistPageFlag: "freelist"}
			if h.id != uint64(id) || types[h.flags] != info.Type || int(h.count) != info.Count || int(h.overflow) != info.OverflowCount {
				t.Errorf("page %d: decoded %+v, bbolt says %+v", id, h, info)
			}
			b = b[:(h.overflow+1)*ps]
			switch info.Type {
			case "leaf":
				leaf(b, h.count)
			case "branch":
				for i := range h.count {
					k, child, ok := branchAt(b, i)
					if !ok || len(k) == 0 || child != childAt(b, i) || child < 2 {
						t.Errorf("page %d element %d: key %x, child %d, %v", id, i, k, child, ok)
					}
				}
			}
			id += info.OverflowCount
		}
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				theirs = append(theirs, pair(k, v))
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ours)
	slices.Sort(theirs)
	if len(theirs) < 500 || !slices.Equal(ours, theirs) {
		t.Errorf("decoded %d pairs, bbolt reads %d; equal: %v", len(ours), len(theirs), slices.Equal(ours, theirs))
	}
}

// TestFirstKeyRule settles how strict the check may be about the key a branch files a
// page under. bbolt's Check asks only that it be at most the page's first key. A reader
// needs no more, so a read-only Open accepts such a file; but bbolt's writer needs the
// two equal (it finds the parent's entry by the page's first key), and one ordinary Put
// into such a page leaves a file that bbolt's own Check rejects. So a writable Open
// refuses it.
func TestFirstKeyRule(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	writeJournal(t, path, 2000)
	root, ps := runsRoot(t, path)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k, _, ok := branchAt(raw[root*uint64(ps):(root+1)*uint64(ps)], 1)
	if !ok || len(k) != 8 {
		t.Fatalf("runs root element 1: key %x", k)
	}
	first := append([]byte(nil), k...)
	below := idKey(binaryID(first) - 1) // the last run of the page before
	rawUpdate(t, path, func(tx *bbolt.Tx) error {
		if err := tx.Bucket(bucketOpen).Delete(below); err != nil {
			return err
		}
		return tx.Bucket(bucketRuns).Delete(below)
	})
	// The root was written anew: file its element 1 under the deleted key, which
	// still lies above every key of the page before.
	root, _ = runsRoot(t, path)
	raw, err = os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	page := raw[root*uint64(ps) : (root+1)*uint64(ps)]
	if k, _, _ := branchAt(page, 1); !bytes.Equal(k, first) {
		t.Fatalf("runs root element 1 is now %x, want %x", k, first)
	}
	keyOff := bytes.Index(page, first) // branchAt's key, found again by content
	overwrite(t, path, int64(root)*int64(ps)+int64(keyOff), below)

	if errs := bboltCheck(t, path); len(errs) > 0 {
		t.Fatalf("bbolt's Check rejects the file: %v", errs)
	}
	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only Open: %v", err)
	}
	if rs, err := ro.List(Filter{}); err != nil || len(rs) != 1999 {
		t.Errorf("read-only List: %d runs, %v", len(rs), err)
	}
	ro.Close()
	if j, err := Open(path, Options{}); err == nil {
		j.Close()
		t.Fatal("writable Open accepted a page that does not start with the key it is filed under")
	} else if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "does not start with it") {
		t.Errorf("writable Open: %v", err)
	}

	// Why: one Put into that page, by bbolt itself.
	rawUpdate(t, path, func(tx *bbolt.Tx) error { return tx.Bucket(bucketRuns).Put(first, []byte("{}")) })
	if errs := bboltCheck(t, path); len(errs) == 0 {
		t.Error("after a Put into the misfiled page bbolt's Check still accepts the file: the writable Open could be as lax")
	} else {
		t.Logf("after one Put, bbolt's Check says: %v", errs[0])
	}
}

func binaryID(k []byte) uint64 {
	var id uint64
	for _, b := range k {
		id = id<<8 | uint64(b)
	}
	return id
}

// TestCheckNoLaxerThanBbolt damages a journal of small pages a few thousand ways, a
// byte or a word at a time, in its tree pages and the freelist. Whatever checkFile
// accepts (read-only: its laxer rule), bbolt's Check must accept too, but for pages
// neither reachable nor free: a leak, which wastes space and misleads no one, and which
// checkFile does not look for (on a big journal it reads only a part of the tree).
func TestCheckNoLaxerThanBbolt(t *testing.T) {
	dir := t.TempDir()
	orig := filepath.Join(dir, "orig.db")
	db, err := bbolt.Open(orig, 0o600, &bbolt.Options{PageSize: 512, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error { return initJournal(tx, t0) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	j, err := Open(orig, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	bulkLoad(t, j, 200, 10, nil)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	deleteRandomRuns(t, orig, 10, 4) // a freelist with pages on it
	base, err := os.ReadFile(orig)
	if err != nil {
		t.Fatal(err)
	}
	var pages []int // tree and freelist pages: where damage is structure, not data
	for _, typ := range []string{"branch", "leaf", "freelist"} {
		ids, _ := pagesOf(t, orig, typ)
		pages = append(pages, ids...)
	}
	const ps = 512
	rng := rand.New(rand.NewPCG(5, 5))
	path := filepath.Join(dir, "journal.db")
	var accepted, agreed int
	for n := range 1500 {
		b := bytes.Clone(base)
		p := pages[rng.IntN(len(pages))]
		off := p*ps + rng.IntN(pageHeaderSize+8*elemSize) // the header and the first elements
		if n%2 == 0 {
			b[off] ^= byte(1 << rng.IntN(8))
		} else {
			b[off] = byte(rng.Uint32())
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ourCheck(t, path, false); err != nil {
			continue
		}
		accepted++
		var errs []error
		for _, err := range bboltCheck(t, path) {
			if !strings.Contains(err.Error(), "unreachable unfreed") {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			t.Errorf("byte %d (page %d + %d) = %#x: checkFile accepts it, bbolt's Check says %v", off, p, off-p*ps, b[off], errs)
		} else {
			agreed++
		}
	}
	t.Logf("%d of 1500 damaged files accepted by checkFile, %d of them by bbolt's Check", accepted, agreed)
}

// TestBothRejectDamage: damage to the tree that bbolt's Check and checkFile (under either
// rule) both refuse. Cycles are left out: bbolt's Check would descend one for ever.
func TestBothRejectDamage(t *testing.T) {
	// keyOf returns the offset in the file of element i's key on page id.
	keyOf := func(t *testing.T, path string, id uint64, ps int, i uint64, branch bool) (off int64, key []byte) {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		page := raw[id*uint64(ps) : (id+1)*uint64(ps)]
		var ok bool
		if branch {
			key, _, ok = branchAt(page, i)
		} else {
			_, key, _, ok = leafAt(page, i)
		}
		if !ok {
			t.Fatalf("page %d has no element %d", id, i)
		}
		return int64(id)*int64(ps) + int64(bytes.Index(page, key)), key
	}
	cases := []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"page filed under a key above its first", runsMisfiled},
		{"two equal keys in a leaf", func(t *testing.T, path string) {
			leaves, ps := pagesOf(t, path, "leaf")
			id := uint64(leaves[len(leaves)/2])
			off, _ := keyOf(t, path, id, ps, 0, false)
			_, next := keyOf(t, path, id, ps, 1, false)
			overwrite(t, path, off, next)
		}},
		{"branch points at a free page", func(t *testing.T, path string) {
			free, ps := pagesOf(t, path, "free")
			if len(free) == 0 {
				t.Fatal("no free page")
			}
			root, _ := runsRoot(t, path)
			var b [8]byte
			binary.NativeEndian.PutUint64(b[:], uint64(free[0]))
			overwrite(t, path, int64(root)*int64(ps)+pageHeaderSize+elemSize+8, b[:])
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "journal.db")
			writeJournal(t, path, 2000)
			deleteRandomRuns(t, path, 50, 6)
			c.damage(t, path)
			for _, writable := range []bool{true, false} {
				if _, err := ourCheck(t, path, writable); !errors.Is(err, ErrCorrupt) {
					t.Errorf("checkFile (writable=%v): %v, want ErrCorrupt", writable, err)
				}
			}
			if errs := bboltCheck(t, path); len(errs) == 0 {
				t.Error("bbolt's Check accepts it")
			}
		})
	}
}
