package journal

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// txid is the id of the journal's last committed write transaction: it grows by one per
// commit, so it counts fsyncs.
func txid(t *testing.T, j *Journal) int {
	t.Helper()
	tx, err := j.db.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	return tx.ID()
}

// holdWriter starts a write that blocks inside its transaction until release is called,
// so that the writes started meanwhile queue behind it; it returns once the write leads.
func holdWriter(t *testing.T, j *Journal) (release func()) {
	t.Helper()
	in, out := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- j.update(func(*bbolt.Tx) error {
			close(in)
			<-out
			return nil
		})
	}()
	<-in
	return func() {
		close(out)
		if err := <-done; err != nil {
			t.Errorf("held write: %v", err)
		}
	}
}

// waitQueued waits until n writes are queued behind the leader.
func waitQueued(t *testing.T, j *Journal, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		j.w.mu.Lock()
		got := len(j.w.queue)
		j.w.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestWritesQueuedDuringACommitShareTheNext(t *testing.T) {
	j := openTemp(t, Options{})
	before := txid(t, j)
	release := holdWriter(t, j)

	const n = 50
	var wg sync.WaitGroup
	got := make([]uint64, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := newRecord(fmt.Sprintf("exp-%d", i))
			errs[i] = j.Begin(&r)
			got[i] = r.ID
		}()
	}
	waitQueued(t, j, n)
	release()
	wg.Wait()

	if after := txid(t, j); after-before != 2 {
		t.Errorf("%d commits for the held write and %d queued ones, want 2", after-before, n)
	}
	seen := map[uint64]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("write %d: %v", i, errs[i])
		}
		if seen[got[i]] || got[i] == 0 {
			t.Fatalf("run id %d handed out twice (or zero)", got[i])
		}
		seen[got[i]] = true
		r, err := j.Get(got[i])
		if err != nil || r.Experiment != fmt.Sprintf("exp-%d", i) {
			t.Fatalf("run %d: %+v, %v; want experiment exp-%d", got[i], r.Experiment, err, i)
		}
	}
	if open, err := j.OpenCount(); err != nil || open != n {
		t.Errorf("open index holds %d runs (%v), want %d", open, err, n)
	}
}

// A write that fails inside a batch must not take the others down with it, nor leave any
// trace of itself.
func TestFailedWriteInBatchLeavesOthersCommitted(t *testing.T) {
	j := openTemp(t, Options{})
	first := newRecord("first")
	if err := j.Begin(&first); err != nil {
		t.Fatal(err)
	}
	release := holdWriter(t, j)

	refused := errors.New("refused by fn")
	var wg sync.WaitGroup
	var okErr, missingErr, refusedErr, panicked any
	var ok Record
	wg.Add(4)
	go func() {
		defer wg.Done()
		ok = newRecord("ok")
		okErr = j.Begin(&ok)
	}()
	go func() {
		defer wg.Done()
		_, missingErr = j.Update(999, func(*Record) error { return nil })
	}()
	go func() {
		defer wg.Done()
		_, refusedErr = j.Update(first.ID, func(x *Record) error {
			x.Experiment = "changed"
			return refused
		})
	}()
	go func() {
		defer wg.Done()
		defer func() { panicked = recover() }()
		_, _ = j.Update(first.ID, func(x *Record) error {
			x.Experiment = "changed by a panicking fn"
			panic("boom")
		})
	}()
	waitQueued(t, j, 4)
	release()
	wg.Wait()

	if okErr != nil {
		t.Fatalf("the good write failed: %v", okErr)
	}
	if r, err := j.Get(ok.ID); err != nil || r.Experiment != "ok" {
		t.Errorf("good write not committed: %+v, %v", r, err)
	}
	if err, _ := missingErr.(error); !errors.Is(err, ErrNotFound) {
		t.Errorf("update of a missing run: %v, want ErrNotFound", missingErr)
	}
	if err, _ := refusedErr.(error); !errors.Is(err, refused) {
		t.Errorf("refused update: %v, want its own error", refusedErr)
	}
	if panicked != "boom" {
		t.Errorf("panic in fn reached the caller as %v, want boom", panicked)
	}
	if r, err := j.Get(first.ID); err != nil || r.Experiment != "first" {
		t.Errorf("run changed by writes that failed: %q, %v", r.Experiment, err)
	}
	// The open count is kept by commits, not read from the file: the rolled-back batch
	// must not have counted.
	open, err := j.OpenRuns()
	if n, _ := j.OpenCount(); err != nil || n != 2 || len(open) != 2 {
		t.Errorf("OpenCount = %d, open index holds %d (%v); want 2 and 2", n, len(open), err)
	}
}

// A flood of writes larger than one batch still gets every write committed, in batches.
func TestBatchesAreBounded(t *testing.T) {
	j := openTemp(t, Options{NoSync: true})
	before := txid(t, j)
	release := holdWriter(t, j)
	n := 2*maxBatch + 1
	var wg sync.WaitGroup
	var failed sync.Map
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := newRecord("flood")
			if err := j.Begin(&r); err != nil {
				failed.Store(i, err)
			}
		}()
	}
	waitQueued(t, j, n)
	release()
	wg.Wait()
	failed.Range(func(k, v any) bool { t.Errorf("write %v: %v", k, v); return true })
	if got, want := txid(t, j)-before, 1+3; got != want {
		t.Errorf("%d commits for %d queued writes, want %d (batches of at most %d)", got, n, want, maxBatch)
	}
	if open, _ := j.OpenCount(); open != n {
		t.Errorf("%d runs committed, want %d", open, n)
	}
}
