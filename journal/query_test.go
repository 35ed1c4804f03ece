package journal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestListFilters(t *testing.T) {
	j := openTemp(t, Options{})
	// id: experiment, status, start (hours after t0; -1 = only scheduled, at hour 0)
	runs := []struct {
		exp    string
		status Status
		hour   int
	}{
		{"a", Succeeded, 0}, {"b", Failed, 1}, {"a", Skipped, -1}, {"a", Succeeded, 3},
		{"b", Succeeded, 4}, {"a", Aborted, 5}, {"c", Skipped, -1},
	}
	for _, x := range runs {
		r := newRecord(x.exp)
		r.Status, r.Cleanup = x.status, CleanupDone
		r.StartedAt = t0.Add(time.Duration(x.hour) * time.Hour)
		if x.hour < 0 {
			r.StartedAt = time.Time{}
			r.ScheduledAt = t0.Add(10 * time.Hour) // scheduled late: Since falls back to it
		}
		if err := j.Begin(&r); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name string
		f    Filter
		want []uint64
	}{
		{"all newest first", Filter{}, []uint64{7, 6, 5, 4, 3, 2, 1}},
		{"limit", Filter{Limit: 3}, []uint64{7, 6, 5}},
		{"limit above count", Filter{Limit: 50}, []uint64{7, 6, 5, 4, 3, 2, 1}},
		{"experiment", Filter{Experiment: "a"}, []uint64{6, 4, 3, 1}},
		{"experiment and limit", Filter{Experiment: "a", Limit: 2}, []uint64{6, 4}},
		{"status", Filter{Status: Succeeded}, []uint64{5, 4, 1}},
		{"since", Filter{Since: t0.Add(4 * time.Hour)}, []uint64{7, 6, 5, 3}},
		{"since and status", Filter{Since: t0.Add(4 * time.Hour), Status: Skipped}, []uint64{7, 3}},
		{"no match", Filter{Experiment: "zzz"}, []uint64{}},
		{"before", Filter{Before: 5, Limit: 2}, []uint64{4, 3}},
		{"before and experiment", Filter{Before: 6, Experiment: "a"}, []uint64{4, 3, 1}},
		{"before past the newest", Filter{Before: 99}, []uint64{7, 6, 5, 4, 3, 2, 1}},
		{"before the oldest", Filter{Before: 1}, []uint64{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := j.List(c.f)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(got), c.want) {
				t.Errorf("List(%+v) = %v, want %v", c.f, ids(got), c.want)
			}
			if got == nil {
				t.Error("List returned nil; JSON output wants []")
			}
		})
	}
	if _, err := j.List(Filter{Limit: -1}); err == nil {
		t.Error("List accepted a negative limit")
	}
}

// TestListLimitReadsOnlyNewest proves that a limit alone does not scan: the oldest runs
// are unreadable, and a limited List never notices.
func TestListLimitReadsOnlyNewest(t *testing.T) {
	j := openTemp(t, Options{NoSync: true})
	bulkLoad(t, j, 20000, 0, nil)
	damageRecords(t, j, 1, 19000)
	got, err := j.List(Filter{Limit: 50})
	if err != nil {
		t.Fatalf("List with a limit read the old runs: %v", err)
	}
	if len(got) != 50 || got[0].ID != 20000 || got[49].ID != 19951 {
		t.Errorf("List = %d runs, %d..%d", len(got), got[0].ID, got[len(got)-1].ID)
	}
	// The same journal without a limit does read them, and says so.
	if _, err := j.List(Filter{}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("List without limit over damaged runs: %v, want ErrCorrupt", err)
	}
}

func TestEachOldestFirstInBatches(t *testing.T) {
	j := openTemp(t, Options{NoSync: true})
	const n = 2*eachBatch + 100
	bulkLoad(t, j, n, 0, nil)
	var got []uint64
	err := j.Each(func(r Record) error {
		got = append(got, r.ID)
		// fn runs outside any transaction: it can use the journal, even write.
		if r.ID == eachBatch {
			extra := newRecord("written during Each")
			return j.Begin(&extra)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n+1 {
		t.Fatalf("Each saw %d runs, want %d (the run added during Each included)", len(got), n+1)
	}
	for i, id := range got {
		if id != uint64(i+1) {
			t.Fatalf("run %d in position %d: not oldest first", id, i)
		}
	}
	stop := errors.New("stop")
	calls := 0
	if err := j.Each(func(Record) error { calls++; return stop }); err != stop || calls != 1 {
		t.Errorf("Each returned %v after %d calls, want the fn's error after 1", err, calls)
	}
}

func TestStats(t *testing.T) {
	j := openTemp(t, Options{})
	for i, x := range []struct {
		exp     string
		status  Status
		cleanup Cleanup
	}{
		{"a", Succeeded, CleanupDone}, {"a", Active, CleanupPending}, {"b", Aborted, CleanupFailed}, {"b", Skipped, CleanupNone},
	} {
		r := newRecord(x.exp)
		r.Status, r.Cleanup = x.status, x.cleanup
		r.StartedAt = t0.Add(time.Duration(i) * time.Minute)
		if err := j.Begin(&r); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.SetHalted(true, "test", t0); err != nil {
		t.Fatal(err)
	}
	s, err := j.Stats()
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{
		Runs:         4,
		Open:         2,
		ByStatus:     map[Status]int{Succeeded: 1, Active: 1, Aborted: 1, Skipped: 1},
		ByExperiment: map[string]int{"a": 2, "b": 2},
		First:        t0,
		Last:         t0.Add(3 * time.Minute),
		FileBytes:    fileSize(t, j.Path()),
		Schema:       SchemaVersion,
		Halted:       true,
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("Stats = %+v\nwant    %+v", s, want)
	}
}

func TestSnapshotIsAJournal(t *testing.T) {
	j := openTemp(t, Options{})
	for i := 0; i < 3; i++ {
		r := newRecord("e")
		if err := j.Begin(&r); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	n, err := j.Snapshot(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) || n == 0 {
		t.Fatalf("Snapshot said %d bytes, wrote %d", n, buf.Len())
	}
	copyPath := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(copyPath, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Open(copyPath, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	open, err := c.OpenRuns()
	if err != nil || !slices.Equal(ids(open), []uint64{1, 2, 3}) {
		t.Errorf("snapshot open runs %v, %v", ids(open), err)
	}
}

// TestConcurrentUse: runs begun and ended from many goroutines at once, with readers
// alongside, get distinct ids, and the open index ends up holding exactly the runs left
// open.
func TestConcurrentUse(t *testing.T) {
	j := openTemp(t, Options{NoSync: true})
	const workers, perWorker = 8, 40
	var wg sync.WaitGroup
	idsCh := make(chan uint64, workers*perWorker)
	errCh := make(chan error, workers*perWorker+1)
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	go func() { // a reader, as the API would be
		defer close(readerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := j.OpenRuns(); err != nil {
				errCh <- err
				return
			}
			if _, err := j.List(Filter{Limit: 10}); err != nil {
				errCh <- err
				return
			}
		}
	}()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				r := newRecord("concurrent")
				if err := j.Begin(&r); err != nil {
					errCh <- err
					return
				}
				idsCh <- r.ID
				if r.ID%3 == 0 { // every third run stays open
					continue
				}
				if _, err := j.Update(r.ID, func(r *Record) error {
					r.Status, r.Cleanup = Succeeded, CleanupDone
					return nil
				}); err != nil {
					errCh <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-readerDone
	close(idsCh)
	close(errCh)
	for err := range errCh {
		t.Fatal(err)
	}
	var got, wantOpen []uint64
	for id := range idsCh {
		got = append(got, id)
	}
	slices.Sort(got)
	if !slices.Equal(got, seq(1, workers*perWorker)) {
		t.Fatalf("ids %v; want 1..%d, each once", got, workers*perWorker)
	}
	for _, id := range got {
		if id%3 == 0 {
			wantOpen = append(wantOpen, id)
		}
	}
	open, err := j.OpenRuns()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(open), wantOpen) {
		t.Errorf("open runs %v, want %v", ids(open), wantOpen)
	}
}
