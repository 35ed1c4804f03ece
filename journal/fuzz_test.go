package journal

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unicode/utf8"

	"go.etcd.io/bbolt"
)

// smallJournal is a valid journal as small as one gets, for the fuzzer to mutate: 512-byte
// pages, a few runs (two open), the halt switch set, and cut at its high-water mark (the
// rest of a bbolt file is room to grow). Go's fuzzer minimises every input that finds
// new code, and on the 64 KiB a default journal takes that ate the whole fuzz time.
func smallJournal(t testing.TB) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "small.db")
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{PageSize: 512, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		if err := initJournal(tx, t0); err != nil {
			return err
		}
		for i := 0; i < 5; i++ {
			r := Record{ID: uint64(i + 1), Experiment: "e", StartedAt: t0, Status: Active, Cleanup: CleanupPending}
			if i%2 == 1 {
				r.Status, r.Cleanup = Succeeded, CleanupDone
			}
			if err := tx.Bucket(bucketRuns).SetSequence(r.ID); err != nil {
				return err
			}
			if _, err := put(tx, &r); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keyHalt, []byte(`{"halted":true,"reason":"x"}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	var hwm int64
	if err := db.View(func(tx *bbolt.Tx) error { hwm = tx.Size(); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b[:hwm]
}

func TestSmallJournalOpens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "small.db")
	if err := os.WriteFile(path, smallJournal(t), 0o600); err != nil {
		t.Fatal(err)
	}
	j, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	open, err := j.OpenRuns()
	if err != nil || len(open) != 3 {
		t.Errorf("open runs %v, %v", ids(open), err)
	}
	r := newRecord("e")
	if err := j.Begin(&r); err != nil || r.ID != 6 {
		t.Errorf("Begin: id %d, %v", r.ID, err)
	}
}

// FuzzOpen writes arbitrary bytes where a journal is expected, opens them and uses
// whatever opened. Nothing may panic or crash, and every refusal must be ErrCorrupt.
func FuzzOpen(f *testing.F) {
	seed := smallJournal(f)
	f.Add(seed)
	for _, n := range []int{len(seed) / 2, len(seed) * 3 / 4, len(seed) - 512, 1024, 512, 100, 0} {
		f.Add(seed[:n])
	}
	f.Add(randomBytes(3072, 9))
	flipped := bytes.Clone(seed)
	binary.NativeEndian.PutUint64(flipped[16+40:], 1<<40) // a huge high-water mark, checksum now wrong
	f.Add(flipped)

	// One file per fuzzing process, written afresh for every input (a directory per
	// input would cost more than the input itself). Afresh, not rewritten: on ext4,
	// truncating a file and writing it again forces a flush, measured at 0.9 ms here,
	// more than all the journal work an input does, and Go's fuzzer runs each new input
	// thousands of times to minimise it.
	dir := f.TempDir()
	path, compacted := filepath.Join(dir, "journal.db"), filepath.Join(dir, "compacted.db")
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = os.Remove(path)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, ro := range []bool{true, false} {
			j, err := Open(path, Options{ReadOnly: ro, Timeout: 100 * time.Millisecond, NoSync: true})
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("read-only=%v: %v, want ErrCorrupt", ro, err)
				}
				return
			}
			_, _ = j.OpenRuns()
			// Whatever a read returns prints as valid JSON and UTF-8, damaged or not.
			recs, _ := j.List(Filter{Limit: 5})
			if b, err := json.Marshal(recs); err != nil || !utf8.Valid(b) {
				t.Fatalf("read-only=%v: List returned what prints as %q, %v", ro, b, err)
			}
			_, _ = j.List(Filter{Experiment: "e"})
			_, _ = j.Stats()
			_, _ = j.Get(3)
			_, _, _, _ = j.Halted()
			_ = j.Each(func(Record) error { return nil })
			if !ro {
				r := newRecord("fuzz")
				_ = j.Begin(&r)
				_, _ = j.Update(r.ID, func(r *Record) error { r.Cleanup = CleanupDone; return nil })
				_, _ = j.Prune(3, time.Hour, t0)
				_ = j.SetHalted(false, "", time.Time{})
			}
			_ = os.Remove(compacted)
			_ = j.Compact(compacted)
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
		}
	})
}
