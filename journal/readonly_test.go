package journal

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestReadOnlyLeavesFileIdentical: inspecting a journal must not change a byte of it
// (the house rule for inspection commands, as in bbolt's own CLI).
func TestReadOnlyLeavesFileIdentical(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	bulkLoad(t, j, 3000, 100, nil)
	if err := j.SetHalted(true, "frozen", t0); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	before := fileSHA(t, path)
	fiBefore, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}

	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ro.List(Filter{Limit: 50}); err != nil || len(got) != 50 {
		t.Errorf("List: %d, %v", len(got), err)
	}
	if _, err := ro.List(Filter{Experiment: "exp-3", Status: Succeeded}); err != nil {
		t.Error(err)
	}
	if s, err := ro.Stats(); err != nil || s.Runs != 3000 || s.Open != 30 || !s.Halted {
		t.Errorf("Stats: %+v, %v", s, err)
	}
	if open, err := ro.OpenRuns(); err != nil || len(open) != 30 {
		t.Errorf("OpenRuns: %d, %v", len(open), err)
	}
	if _, err := ro.Get(1234); err != nil {
		t.Error(err)
	}
	if err := ro.Each(func(Record) error { return nil }); err != nil {
		t.Error(err)
	}
	if h, _, _, err := ro.Halted(); err != nil || !h {
		t.Errorf("Halted: %v, %v", h, err)
	}
	if _, err := ro.Snapshot(io.Discard); err != nil {
		t.Error(err)
	}
	r := newRecord("e")
	if err := ro.Begin(&r); err == nil {
		t.Error("Begin on a read-only journal succeeded")
	}
	if _, err := ro.Prune(10, 0, t0); err == nil {
		t.Error("Prune on a read-only journal succeeded")
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}

	if after := fileSHA(t, path); after != before {
		t.Errorf("read-only inspection changed the file: sha256 %s -> %s", before, after)
	}
	fiAfter, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !fiAfter.ModTime().Equal(fiBefore.ModTime()) || fiAfter.Size() != fiBefore.Size() {
		t.Errorf("read-only inspection touched the file: %v/%d -> %v/%d", fiBefore.ModTime(), fiBefore.Size(), fiAfter.ModTime(), fiAfter.Size())
	}
}

func TestReadOnlyDoesNotCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "journal.db")
	_, err := Open(path, Options{ReadOnly: true})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("read-only open of a missing journal: %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(filepath.Dir(path)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("read-only open created the directory: %v", err)
	}
}
