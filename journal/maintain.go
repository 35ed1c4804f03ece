package journal

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"go.etcd.io/bbolt"
)

// Stats summarises a journal, for `chaoscron journal stats`.
type Stats struct {
	Runs         int              `json:"runs"`
	Open         int              `json:"open"`
	ByStatus     map[Status]int   `json:"by_status"`
	ByExperiment map[string]int   `json:"by_experiment"`
	First        time.Time        `json:"first"`   // earliest StartedAt (or ScheduledAt)
	Last         time.Time        `json:"last"`    // latest StartedAt (or ScheduledAt)
	Damaged      int              `json:"damaged"` // runs not counted above: their records are damaged
	FileBytes    int64            `json:"file_bytes"`
	Schema       int              `json:"schema"`
	Halted       bool             `json:"halted"`
	Paused       map[string]Pause `json:"paused,omitempty"` // experiments paused, by name
}

// runSummary is the part of a record that Stats and Prune need; decoding only it
// spares copying the params and undo of every run.
type runSummary struct {
	Experiment  string    `json:"experiment"`
	Status      Status    `json:"status"`
	Cleanup     Cleanup   `json:"cleanup"`
	ScheduledAt time.Time `json:"scheduled_at"`
	StartedAt   time.Time `json:"started_at"`
}

// decodeSummary decodes the summary of the run under key k, after checking its seal. A
// damaged record gives a *recordError.
func decodeSummary(k, v []byte) (runSummary, error) {
	var s runSummary
	if len(k) != 8 || v == nil {
		return s, corrupt("run key %x is not a run", k)
	}
	id := binary.BigEndian.Uint64(k)
	js, err := unseal(id, k, v)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(js, &s); err != nil {
		return s, &recordError{id, err.Error()}
	}
	return s, nil
}

func (s *runSummary) open() bool { return (&Record{Cleanup: s.Cleanup}).Open() }

// started is when the run started, or was scheduled to.
func (s *runSummary) started() time.Time {
	if s.StartedAt.IsZero() {
		return s.ScheduledAt
	}
	return s.StartedAt
}

// Stats reads the whole journal: O(runs). Damaged runs are counted in Damaged and
// reported as a *DamagedError, which comes with the stats of the rest.
func (j *Journal) Stats() (Stats, error) {
	s := Stats{ByStatus: map[Status]int{}, ByExperiment: map[string]int{}}
	var skip skipped
	err := j.view(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keySchema); len(v) == 8 {
			s.Schema = int(binary.BigEndian.Uint64(v))
		}
		h, err := decodeHalt(meta.Get(keyHalt))
		if err != nil {
			return err
		}
		s.Halted = h.Halted
		if s.Paused, err = decodePaused(meta.Get(keyPaused)); err != nil {
			return err
		}
		if len(s.Paused) == 0 {
			s.Paused = nil
		}
		c := tx.Bucket(bucketOpen).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			s.Open++
		}
		c = tx.Bucket(bucketRuns).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			r, err := decodeSummary(k, v)
			if skip.add(err) {
				s.Damaged++
				continue
			} else if err != nil {
				return err
			}
			s.Runs++
			s.ByStatus[r.Status]++
			s.ByExperiment[r.Experiment]++
			if t := r.started(); !t.IsZero() {
				if s.First.IsZero() || t.Before(s.First) {
					s.First = t
				}
				if t.After(s.Last) {
					s.Last = t
				}
			}
		}
		return nil
	})
	if err != nil {
		return Stats{}, fmt.Errorf("journal stats: %w", err)
	}
	fi, err := os.Stat(j.path)
	if err != nil {
		return Stats{}, fmt.Errorf("journal stats: %w", err)
	}
	s.FileBytes = fi.Size()
	return s, skip.err(j.path)
}

// pruneBatch is how many runs one Prune transaction deletes at most. Each deletion
// dirties pages that the commit writes out, and the writer lock is held meanwhile: small
// transactions keep a big prune from delaying a Begin (and so a fault) for long.
const pruneBatch = 1000

// Prune deletes closed runs, oldest first: as many as there are runs beyond maxRuns,
// and those that started (or, if they never did, were scheduled) more than maxAge
// before now. A zero limit is no limit. An open run is never deleted, whatever its age:
// it still has a fault to reverse. It returns how many runs it deleted, also when it
// fails part way.
//
// Age retention walks from the oldest run and stops at the first closed run young
// enough to keep: ids are handed out in start order, so the walk does not read the
// whole journal each time. (Start, not end: ends are not in id order, and one long run
// would stop the walk.) A closed run with no time at all is left to count retention.
// Freed pages are reused by later runs, but the file does not shrink: see Compact.
func (j *Journal) Prune(maxRuns int, maxAge time.Duration, now time.Time) (int, error) {
	if maxRuns < 0 || maxAge < 0 {
		return 0, fmt.Errorf("prune journal: negative limit (max runs %d, max age %v)", maxRuns, maxAge)
	}
	if maxRuns == 0 && maxAge == 0 {
		return 0, nil
	}
	excess := 0
	if maxRuns > 0 {
		err := j.view(func(tx *bbolt.Tx) error {
			// Count keys with a cursor, without decoding the runs. (Bucket.Stats would
			// also do, but it follows anything flagged as a nested bucket, and in a
			// damaged leaf that Open did not read that can recurse without end.)
			c := tx.Bucket(bucketRuns).Cursor()
			for k, _ := c.First(); k != nil; k, _ = c.Next() {
				excess++
			}
			excess -= maxRuns
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("prune journal: %w", err)
		}
	}
	var cutoff time.Time
	if maxAge > 0 {
		cutoff = now.Add(-maxAge)
	}
	removed := 0
	for {
		n, more, err := j.pruneOnce(&excess, cutoff)
		removed += n
		if err != nil {
			return removed, fmt.Errorf("prune journal: %w", err)
		}
		if !more {
			return removed, nil
		}
	}
}

// pruneOnce deletes up to pruneBatch runs in one transaction; more says there may be
// others to delete. *excess is how many runs count retention still wants gone.
func (j *Journal) pruneOnce(excess *int, cutoff time.Time) (n int, more bool, err error) {
	var left int
	err = j.update(func(tx *bbolt.Tx) error {
		// From scratch each time: update may run fn more than once.
		left, more = *excess, false
		runs, open := tx.Bucket(bucketRuns), tx.Bucket(bucketOpen)
		var victims [][]byte
		c := runs.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(victims) == pruneBatch {
				more = true
				break
			}
			r, err := decodeSummary(k, v)
			if errors.Is(err, ErrDamaged) {
				// Kept, like an open run: it may be one, and it is evidence.
				continue
			} else if err != nil {
				return err
			}
			if r.open() {
				continue
			}
			if left > 0 {
				left--
			} else if cutoff.IsZero() {
				break
			} else if t := r.started(); t.IsZero() {
				continue
			} else if !t.Before(cutoff) {
				break
			}
			// Cursor keys point into the transaction's pages: copy before deleting.
			victims = append(victims, slices.Clone(k))
		}
		// Delete after the walk: deleting under a cursor can make it skip a key.
		for _, k := range victims {
			if err := runs.Delete(k); err != nil {
				return err
			}
			if open.Get(k) != nil { // never, as Open checks: the victims are closed runs
				if err := open.Delete(k); err != nil {
					return err
				}
				j.txOpen--
			}
		}
		n = len(victims)
		return nil
	})
	if err != nil {
		return 0, false, err
	}
	*excess = left
	return n, more, nil
}

// compactTxBytes bounds each transaction that writes the compacted copy.
const compactTxBytes = 16 << 20

// Compact writes a compacted copy of the journal to dst, which must not exist: a
// journal's file never shrinks by itself, not even after Prune. Swapping the copy in
// place of the journal (rename while no process has the journal open) is the caller's.
// The copy is taken from one read transaction, so it is consistent while the journal
// stays in use; it is fsynced, with its directory entry, before Compact returns, and a
// copy left half-written by an error is removed.
//
// It copies the three buckets itself rather than call bbolt.Compact, which follows
// anything flagged as a nested bucket: in a damaged leaf of a big journal (Open does
// not read those) that can recurse without end. The copy checks each run's key as it
// goes, and packs the pages full, since nothing is inserted into them afterwards but at
// the end.
func (j *Journal) Compact(dst string) (err error) {
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("compact journal %s into %s: %w", j.path, dst, fs.ErrExist)
	}
	out, err := bbolt.Open(dst, 0o600, &bbolt.Options{
		Timeout: time.Second,
		// One fdatasync at the end instead of one per transaction: the copy is of no
		// use to anyone until Compact has returned.
		NoSync:       true,
		NoGrowSync:   true,
		FreelistType: bbolt.FreelistMapType,
	})
	if err != nil {
		return fmt.Errorf("compact journal %s into %s: %w", j.path, dst, err)
	}
	defer func() {
		if cerr := out.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("compact journal %s into %s: %w", j.path, dst, cerr)
		}
		if err != nil {
			_ = os.Remove(dst)
		}
	}()
	err = j.view(func(src *bbolt.Tx) error { return copyJournal(src, out) })
	if err == nil {
		err = out.Sync()
	}
	if err == nil {
		err = syncDir(filepath.Dir(dst))
	}
	if err != nil {
		return fmt.Errorf("compact journal %s into %s: %w", j.path, dst, err)
	}
	return nil
}

// copyJournal copies the journal read by src into the empty database out, in
// transactions of about compactTxBytes.
func copyJournal(src *bbolt.Tx, out *bbolt.DB) (err error) {
	tx, err := out.Begin(true)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }() // after Commit, a no-op
	for _, name := range [][]byte{bucketMeta, bucketOpen, bucketRuns} {
		from := src.Bucket(name)
		to, err := tx.CreateBucket(name)
		if err != nil {
			return err
		}
		if err := to.SetSequence(from.Sequence()); err != nil {
			return err
		}
		to.FillPercent = 1.0
		size := 0
		c := from.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if v == nil || (!bytes.Equal(name, bucketMeta) && len(k) != 8) {
				return corrupt("%s key %x is not one of a journal", name, k)
			}
			if size += len(k) + len(v); size > compactTxBytes {
				if err := tx.Commit(); err != nil {
					return err
				}
				if tx, err = out.Begin(true); err != nil {
					return err
				}
				to = tx.Bucket(name)
				to.FillPercent = 1.0
				size = len(k) + len(v)
			}
			// Put keeps v, which points into src's pages: they stay mapped until src
			// ends, after the last commit here.
			if err := to.Put(k, v); err != nil {
				return err
			}
		}
	}
	return tx.Commit()
}

// Snapshot writes a consistent copy of the journal file to w, from one read
// transaction, while the journal stays in use: this is how the journal commands read a
// journal that a running agent holds locked. It returns the bytes written.
func (j *Journal) Snapshot(w io.Writer) (int64, error) {
	var n int64
	err := j.view(func(tx *bbolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("snapshot journal %s: %w", j.path, err)
	}
	return n, nil
}
