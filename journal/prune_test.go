package journal

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// remainingIDs lists every run left in the journal, oldest first.
func remainingIDs(t *testing.T, j *Journal) []uint64 {
	t.Helper()
	var got []uint64
	if err := j.Each(func(r Record) error { got = append(got, r.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	return got
}

func seq(from, to uint64) []uint64 {
	var s []uint64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

func TestPrune(t *testing.T) {
	// Runs 1..20 start an hour apart from t0; 2, 3 and 15 are open.
	open := map[uint64]bool{2: true, 3: true, 15: true}
	now := t0.Add(20 * time.Hour)
	cases := []struct {
		name    string
		maxRuns int
		maxAge  time.Duration
		now     time.Time
		removed int
		left    []uint64
	}{
		{"no limits", 0, 0, now, 0, seq(1, 20)},
		{"count", 10, 0, now, 10, slices.Concat([]uint64{2, 3}, seq(13, 20))},
		{"count below the open runs", 2, 0, now, 17, []uint64{2, 3, 15}},
		{"count above the runs", 50, 0, now, 0, seq(1, 20)},
		{"age", 0, 10 * time.Hour, now, 8, slices.Concat([]uint64{2, 3}, seq(11, 20))},
		{"age, all old", 0, time.Hour, t0.Add(100 * time.Hour), 17, []uint64{2, 3, 15}},
		{"age, none old", 0, 100 * time.Hour, now, 0, seq(1, 20)},
		{"count binds harder than age", 5, 10 * time.Hour, now, 15, []uint64{2, 3, 15, 19, 20}},
		{"age binds harder than count", 15, 10 * time.Hour, now, 8, slices.Concat([]uint64{2, 3}, seq(11, 20))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j := openTemp(t, Options{})
			for id := uint64(1); id <= 20; id++ {
				r := newRecord("e")
				r.StartedAt = t0.Add(time.Duration(id-1) * time.Hour)
				r.Status, r.Cleanup = Succeeded, CleanupDone
				if open[id] {
					r.Status, r.Cleanup = Aborted, CleanupFailed
				}
				if err := j.Begin(&r); err != nil {
					t.Fatal(err)
				}
			}
			removed, err := j.Prune(c.maxRuns, c.maxAge, c.now)
			if err != nil {
				t.Fatal(err)
			}
			if removed != c.removed {
				t.Errorf("removed %d, want %d", removed, c.removed)
			}
			if got := remainingIDs(t, j); !slices.Equal(got, c.left) {
				t.Errorf("left %v, want %v", got, c.left)
			}
			runs, err := j.OpenRuns()
			if err != nil || !slices.Equal(ids(runs), []uint64{2, 3, 15}) {
				t.Errorf("open runs after prune: %v, %v", ids(runs), err)
			}
		})
	}
}

func TestPruneUndatedRuns(t *testing.T) {
	j := openTemp(t, Options{})
	for _, start := range []time.Time{{}, t0, t0.Add(10 * time.Hour)} {
		r := newRecord("e")
		r.ScheduledAt, r.StartedAt = start, start
		r.Status, r.Cleanup = Failed, CleanupNone
		if err := j.Begin(&r); err != nil {
			t.Fatal(err)
		}
	}
	// By age, a run without a time is passed over (not a reason to stop the walk).
	if n, err := j.Prune(0, time.Hour, t0.Add(10*time.Hour)); err != nil || n != 1 {
		t.Fatalf("age prune removed %d, %v; want 1", n, err)
	}
	if got := remainingIDs(t, j); !slices.Equal(got, []uint64{1, 3}) {
		t.Errorf("after age prune: %v", got)
	}
	// By count, it goes like any other.
	if n, err := j.Prune(1, 0, t0); err != nil || n != 1 {
		t.Fatalf("count prune removed %d, %v; want 1", n, err)
	}
	if got := remainingIDs(t, j); !slices.Equal(got, []uint64{3}) {
		t.Errorf("after count prune: %v", got)
	}
}

// TestPruneManyBatches deletes more than one transaction's worth.
func TestPruneManyBatches(t *testing.T) {
	j := openTemp(t, Options{})
	bulkLoad(t, j, 2*pruneBatch+505, 501, nil) // runs 1, 502, 1003, 1504, 2005 open
	n, err := j.Prune(100, 0, t0)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2*pruneBatch+405 {
		t.Errorf("removed %d, want %d", n, 2*pruneBatch+405)
	}
	want := slices.Concat([]uint64{1, 502, 1003, 1504, 2005}, seq(2*pruneBatch+411, 2*pruneBatch+505))
	if got := remainingIDs(t, j); !slices.Equal(got, want) {
		t.Errorf("left %d runs %v…, want %d", len(got), got[:min(len(got), 8)], len(want))
	}
}

func TestPruneRejectsNegative(t *testing.T) {
	j := openTemp(t, Options{})
	for _, c := range []struct {
		runs int
		age  time.Duration
	}{{-1, 0}, {0, -time.Hour}} {
		if _, err := j.Prune(c.runs, c.age, t0); err == nil {
			t.Errorf("Prune(%d, %v) accepted", c.runs, c.age)
		}
	}
}

// TestCompactBoundsFile: the story of the file size. Pruning frees pages for reuse but
// leaves the file as big as it was; Compact writes a copy of the size the kept runs need,
// and the copy is a journal that carries on where the original stopped.
func TestCompactBoundsFile(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(filepath.Join(dir, "journal.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	bulkLoad(t, j, 100_000, 1000, nil)
	full := fileSize(t, j.Path())

	start := time.Now()
	n, err := j.Prune(10_000, 0, t0)
	if err != nil {
		t.Fatal(err)
	}
	pruneTook := time.Since(start)
	if n != 90_000 {
		t.Fatalf("pruned %d, want 90000", n)
	}
	pruned := fileSize(t, j.Path())
	if pruned < full {
		t.Errorf("the file shrank on prune (%d -> %d): bbolt never shrinks it, so the test is wrong", full, pruned)
	}

	dst := filepath.Join(dir, "compact.db")
	start = time.Now()
	if err := j.Compact(dst); err != nil {
		t.Fatal(err)
	}
	compactTook := time.Since(start)
	compacted := fileSize(t, dst)
	t.Logf("100k runs: %.1f MB; pruned to 10k in %v: %.1f MB; compacted in %v: %.1f MB",
		float64(full)/1e6, pruneTook.Round(time.Millisecond), float64(pruned)/1e6, compactTook.Round(time.Millisecond), float64(compacted)/1e6)
	if compacted > full/5 {
		t.Errorf("compacted file is %d bytes, more than a fifth of %d", compacted, full)
	}
	if fi, err := os.Stat(dst); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("compacted file mode: %v, %v", fi.Mode(), err)
	}

	c, err := Open(dst, Options{})
	if err != nil {
		t.Fatalf("compacted copy does not open: %v", err)
	}
	defer c.Close()
	s, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.Runs != 10_000 || s.Open != 100 {
		t.Errorf("compacted copy holds %d runs, %d open; want 10000, 100", s.Runs, s.Open)
	}
	r := newRecord("after compaction")
	if err := c.Begin(&r); err != nil || r.ID != 100_001 {
		t.Errorf("next id in the copy is %d (%v), want 100001: ids must never be reused", r.ID, err)
	}

	if err := j.Compact(dst); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Compact over an existing file: %v, want fs.ErrExist", err)
	}
}
