package journal

import (
	"errors"
	"fmt"
	"sync"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Writes are group-committed. bbolt has one writer, and each commit costs an fsync, so
// writes that arrive while a commit is in flight would otherwise queue for an fsync each,
// and the last of 200 experiments firing on the same tick would wait for 199 fsyncs
// (docs/performance.md has the figures). Instead each write joins a queue, and whoever finds
// no commit in flight leads: it takes every write queued so far into one transaction and
// one fsync, answers each, and hands the lead to the first write that queued meanwhile.
//
// A lone write commits at once. bbolt's own Batch waits up to 10 ms for company, which
// every intent would pay; here only writes that would have waited anyway share a commit.
//
// Each write still gets exactly the guarantee of a transaction of its own: it returns nil
// only once the commit that holds it is fsynced, and a write whose fn fails changes
// nothing. When one fn fails, the batch is rolled back and each write is committed alone,
// so one write's error is nobody else's. That is why fn may run more than once and must
// set whatever it hands back from scratch each time.

// maxBatch bounds the writes in one transaction, so that a leader hands back control
// and no transaction grows without end under a flood of writes.
const maxBatch = 256

// writer is the queue of writes waiting for a commit.
type writer struct {
	mu      sync.Mutex
	leading bool     // a write is committing a batch
	queue   []*write // waiting, in arrival order
}

type write struct {
	fn   func(*bbolt.Tx) error
	done chan result // one at a time: the lead, then the result
}

type result struct {
	err  error
	lead bool // not a result: commit the queue, then wait for your own
}

// update runs fn in a read-write transaction that is committed, and fsynced, before it
// returns nil, possibly together with other writes (see above). A panic on a damaged
// page becomes ErrCorrupt, rolls the transaction back, and from then on the journal
// takes no more writes: writing on top of a damaged tree could spread the damage.
// Reopening the journal checks it again.
func (j *Journal) update(fn func(*bbolt.Tx) error) error {
	if j.readOnly {
		return fmt.Errorf("journal %s is open read-only: %w", j.path, berrors.ErrDatabaseReadOnly)
	}
	w := &write{fn: fn, done: make(chan result, 1)}
	j.w.mu.Lock()
	j.w.queue = append(j.w.queue, w)
	lead := !j.w.leading
	j.w.leading = true
	j.w.mu.Unlock()
	for {
		if lead {
			j.lead()
		}
		r := <-w.done
		if !r.lead {
			return r.err
		}
		lead = true
	}
}

// lead commits the writes queued now (up to maxBatch), then passes the lead on.
func (j *Journal) lead() {
	j.w.mu.Lock()
	n := min(len(j.w.queue), maxBatch)
	batch := j.w.queue[:n:n]
	j.w.queue = j.w.queue[n:]
	j.w.mu.Unlock()

	j.commitBatch(batch)

	j.w.mu.Lock()
	if len(j.w.queue) > 0 {
		j.w.queue[0].done <- result{lead: true}
	} else {
		j.w.leading = false
		j.w.queue = nil // let the backing array go
	}
	j.w.mu.Unlock()
}

// errRefused marks a batch rolled back because one of its writes failed.
var errRefused = errors.New("a write in the batch failed")

// commitBatch commits ws in one transaction, or, if one of them fails, each on its own.
func (j *Journal) commitBatch(ws []*write) {
	if len(ws) > 1 {
		err := j.commit(func(tx *bbolt.Tx) error {
			for _, w := range ws {
				if err := w.fn(tx); err != nil {
					return errRefused
				}
			}
			return nil
		})
		if !errors.Is(err, errRefused) {
			for _, w := range ws {
				w.done <- result{err: err}
			}
			return
		}
	}
	for _, w := range ws {
		w.done <- result{err: j.commit(w.fn)}
	}
}

// commit runs fn in a transaction and commits it.
//
// The transaction is managed here rather than by bbolt's Update, whose rollback after a
// panic re-reads the freelist page from the file: if that page is the damaged one, the
// rollback panics in turn and leaves bbolt's writer lock held, and the next write (or
// Close) waits forever. Tx.Rollback undoes the transaction in memory only.
func (j *Journal) commit(fn func(*bbolt.Tx) error) (err error) {
	if err := j.brokenErr(); err != nil {
		return err
	}
	var tx *bbolt.Tx
	defer guard(&err, func(r any) error {
		if tx != nil {
			func() {
				defer func() { _ = recover() }()
				_ = tx.Rollback()
			}()
		}
		err := j.panicError(r)
		j.mu.Lock()
		j.broken = err
		j.mu.Unlock()
		return err
	})()
	tx, err = j.db.Begin(true)
	if err != nil {
		return err
	}
	j.txOpen = 0 // only the writer touches it, and there is one at a time
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	j.openN.Add(int64(j.txOpen))
	return nil
}
