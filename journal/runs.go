package journal

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"go.etcd.io/bbolt"
)

// idKey is the bucket key of run id: big-endian, so keys sort in id order and a cursor
// walks runs oldest first.
func idKey(id uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, id)
	return k
}

// decodeRecord decodes a stored run, after checking its seal. The key is authoritative
// for the id. A damaged record gives a *recordError.
func decodeRecord(id uint64, v []byte) (Record, error) {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], id)
	js, err := unseal(id, k[:], v)
	if err != nil {
		return Record{}, err
	}
	var r Record
	if err := json.Unmarshal(js, &r); err != nil {
		return Record{}, &recordError{id, err.Error()}
	}
	r.ID = id
	return r, nil
}

// decodeAt decodes the run under cursor key k.
func decodeAt(k, v []byte) (Record, error) {
	if len(k) != 8 || v == nil {
		return Record{}, corrupt("run key %x is not a run", k)
	}
	return decodeRecord(binary.BigEndian.Uint64(k), v)
}

// damage names the journal in a damaged record's error.
func (j *Journal) damage(err error) error {
	if errors.Is(err, ErrDamaged) {
		return fmt.Errorf("journal %s: %w", j.path, err)
	}
	return err
}

// checkState refuses a record whose status or cleanup is not one of the known values.
// An unset cleanup in particular would keep a run that has a fault to reverse out of
// the open index, out of sight of start-up recovery.
func checkState(r *Record) error {
	switch r.Status {
	case Pending, Active, Succeeded, Failed, Aborted, Skipped:
	default:
		return fmt.Errorf("unknown status %q", r.Status)
	}
	switch r.Cleanup {
	case CleanupNone, CleanupPending, CleanupDone, CleanupFailed, CleanupRecovered:
	default:
		return fmt.Errorf("unknown cleanup %q", r.Cleanup)
	}
	// Strings are written escaped, but raw params and undo as they are: bytes that are
	// not UTF-8 there would be printed as they are too (and read back as damage).
	if !utf8.Valid(r.Params) || !utf8.Valid(r.Undo) {
		return errors.New("params or undo are not valid UTF-8")
	}
	return nil
}

// put stores r and brings the open index in step with r.Open(), in the caller's
// transaction, so that the record and the index can never disagree on disk. It returns
// how the index's size changed (-1, 0 or 1).
func put(tx *bbolt.Tx, r *Record) (opened int, err error) {
	return putOpen(tx, r, tx.Bucket(bucketOpen).Get(idKey(r.ID)) != nil)
}

// putOpen is put for a caller that knows whether run r is in the open index now (had),
// which saves a look-up in a write that makes several.
func putOpen(tx *bbolt.Tx, r *Record, had bool) (opened int, err error) {
	v, err := encodeAfter(r, sealSize)
	if err != nil {
		return 0, fmt.Errorf("encode run %d: %w", r.ID, err)
	}
	k := idKey(r.ID)
	seal(k, v)
	runs := tx.Bucket(bucketRuns)
	// Ids only grow, so runs are appended at the right edge of the tree, where bbolt's
	// default split (half full) would leave every page half empty for good. Measured on
	// 20k runs through their lifecycle: pages 43% full and 34 MB at the default, 71%
	// and 17 MB at 0.9, which leaves room for the fields a run gains as it ends.
	runs.FillPercent = 0.9
	if err := runs.Put(k, v); err != nil {
		return 0, err
	}
	open := tx.Bucket(bucketOpen)
	if r.Open() {
		// Never an empty value: bbolt cursors mark a nested bucket with a nil value, and
		// no reader should have to tell the two apart.
		if err := open.Put(k, []byte(r.Cleanup)); err != nil {
			return 0, err
		}
		if !had {
			return 1, nil
		}
		return 0, nil
	}
	if !had {
		return 0, nil
	}
	return -1, open.Delete(k)
}

// put is the package's put for a write of this journal: it counts the change to the open
// index towards the transaction in progress (see commit).
func (j *Journal) put(tx *bbolt.Tx, r *Record) error {
	d, err := put(tx, r)
	j.txOpen += d
	return err
}

// putOpen is j.put for a caller that knows whether r is in the open index (see putOpen).
func (j *Journal) putOpen(tx *bbolt.Tx, r *Record, had bool) error {
	d, err := putOpen(tx, r, had)
	j.txOpen += d
	return err
}

// view runs fn in a read transaction; a panic on a damaged page becomes ErrCorrupt.
func (j *Journal) view(fn func(*bbolt.Tx) error) (err error) {
	defer guard(&err, j.panicError)()
	return j.db.View(fn)
}

// brokenErr is the error that made the journal refuse writes, if any.
func (j *Journal) brokenErr() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.broken
}

// panicError is the error for a panic in a transaction, which bbolt raises only on a
// damaged page.
func (j *Journal) panicError(r any) error {
	j.mu.Lock()
	j.damaged = true
	j.mu.Unlock()
	return fmt.Errorf("journal %s: %w: %v", j.path, ErrCorrupt, r)
}

// Begin commits r as a new run: it sets r.ID to the next id (whatever r.ID was) and
// writes the record, and, if r.Open(), its entry in the open index, in one fsynced
// transaction. This is the write-ahead step: apply the fault only after Begin returns
// nil, so that a crash at any later point leaves a record for recovery to find.
func (j *Journal) Begin(r *Record) error {
	if r == nil {
		return errors.New("begin run: nil record")
	}
	if err := checkState(r); err != nil {
		return fmt.Errorf("begin run of %q: %w", r.Experiment, err)
	}
	var id uint64
	err := j.update(func(tx *bbolt.Tx) error {
		runs := tx.Bucket(bucketRuns)
		seq, err := runs.NextSequence()
		if err != nil {
			return err
		}
		// Open checked that the sequence is past the last key; this makes sure no
		// recorded run can ever be overwritten, whatever happened to the file since.
		if runs.Get(idKey(seq)) != nil {
			return corrupt("id sequence hands out run %d, which exists", seq)
		}
		rec := *r
		rec.ID = seq
		// Not in the open index either: Open checked that it names only recorded runs.
		if err := j.putOpen(tx, &rec, false); err != nil {
			return err
		}
		id = seq
		return nil
	})
	if err != nil {
		return fmt.Errorf("begin run of %q: %w", r.Experiment, err)
	}
	// Only now: a sequence number taken in a transaction that did not commit is handed
	// out again, so r must not carry it.
	r.ID = id
	return nil
}

// errPanicked aborts the transaction of an Update whose fn panicked.
var errPanicked = errors.New("update function panicked")

// Update reads run id, lets fn change it, and writes it back with the open index in
// step with r.Open(), all in one fsynced transaction, and returns the record as stored.
// If fn returns an error, nothing is written and that error is returned (wrapped). fn
// must not change the id. A missing run gives ErrNotFound. A panic in fn rolls the
// transaction back and is then passed on.
func (j *Journal) Update(id uint64, fn func(*Record) error) (Record, error) {
	var (
		out      Record
		panicked bool
		pv       any
	)
	err := j.update(func(tx *bbolt.Tx) error {
		panicked, pv = false, nil // update may run this more than once
		v := tx.Bucket(bucketRuns).Get(idKey(id))
		if v == nil {
			return ErrNotFound
		}
		r, err := decodeRecord(id, v)
		if err != nil {
			return j.damage(err)
		}
		// A panic in fn is the caller's bug, not damage to the file: keep it apart from
		// what the guard around the transaction would report as ErrCorrupt.
		err = func() (err error) {
			defer func() {
				if p := recover(); p != nil {
					panicked, pv, err = true, p, errPanicked
				}
			}()
			return fn(&r)
		}()
		if err != nil {
			return err
		}
		if r.ID != id {
			return fmt.Errorf("update function changed the id to %d", r.ID)
		}
		if err := checkState(&r); err != nil {
			return err
		}
		if err := j.put(tx, &r); err != nil {
			return err
		}
		out = r
		return nil
	})
	if panicked {
		panic(pv)
	}
	if err != nil {
		return Record{}, fmt.Errorf("update run %d: %w", id, err)
	}
	return out, nil
}

// Put stores r over the run with its id, with the open index in step with r.Open(), in one
// fsynced transaction. It is Update for the owner of a live run, who holds the whole record
// already: it saves decoding the stored one, the larger part of a write's CPU, which adds up
// when many runs start on the same tick. The run must exist (else ErrNotFound): Put never
// creates one, so it cannot take an id Begin has yet to hand out.
func (j *Journal) Put(r *Record) error {
	if r == nil {
		return errors.New("put run: nil record")
	}
	if err := checkState(r); err != nil {
		return fmt.Errorf("put run %d: %w", r.ID, err)
	}
	err := j.update(func(tx *bbolt.Tx) error {
		// A live run is in the open index, and the index names only recorded runs: only a
		// run that is not open needs the look-up of its record.
		k := idKey(r.ID)
		had := tx.Bucket(bucketOpen).Get(k) != nil
		if !had && tx.Bucket(bucketRuns).Get(k) == nil {
			return ErrNotFound
		}
		return j.putOpen(tx, r, had)
	})
	if err != nil {
		return fmt.Errorf("put run %d: %w", r.ID, err)
	}
	return nil
}

// Get returns run id, or an error wrapping ErrNotFound.
func (j *Journal) Get(id uint64) (Record, error) {
	var r Record
	err := j.view(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketRuns).Get(idKey(id))
		if v == nil {
			return ErrNotFound
		}
		var err error
		r, err = decodeRecord(id, v)
		return j.damage(err)
	})
	if err != nil {
		return Record{}, fmt.Errorf("get run %d: %w", id, err)
	}
	return r, nil
}

// OpenRuns returns the runs that still have something to reverse, oldest first. It
// reads the open index and only the runs it names, so start-up recovery costs O(open
// runs) however long the journal is.
func (j *Journal) OpenRuns() ([]Record, error) {
	out := []Record{}
	err := j.view(func(tx *bbolt.Tx) error {
		runs := tx.Bucket(bucketRuns)
		c := tx.Bucket(bucketOpen).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			v := runs.Get(k)
			if v == nil {
				return corrupt("open index names run %x, which is missing", k)
			}
			r, err := decodeAt(k, v)
			if err != nil {
				// Never skipped: an open run holds a fault to reverse.
				return j.damage(err)
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open runs: %w", err)
	}
	return out, nil
}

// OpenCount is how many runs are open: the size of the open index, counted at Open and kept
// in step by every commit since, so it reads no file. (A walk of the index per call was 8%
// of the agent's CPU with 200 runs on a tick: the open-runs gauge asks after every change.)
func (j *Journal) OpenCount() (int, error) {
	return int(j.openN.Load()), nil
}

// count counts the open index from the file, for Open: from then on, each commit keeps
// openN in step. A cursor walk rather than Bucket.Stats, which follows nested buckets
// without bound.
func (j *Journal) count() error {
	n := 0
	err := j.view(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketOpen).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("count open runs: %w", err)
	}
	j.openN.Store(int64(n))
	return nil
}

// Filter selects runs for List. Zero fields select everything.
type Filter struct {
	Experiment string    // exact name
	Status     Status    // exact status
	Since      time.Time // StartedAt (or ScheduledAt if StartedAt is zero) >= Since
	Limit      int       // at most this many, newest first; 0 = all
	Before     uint64    // only runs with a smaller id: the cursor of the next page; 0 = none
}

func (f *Filter) match(r *runSummary) bool {
	if f.Experiment != "" && r.Experiment != f.Experiment {
		return false
	}
	if f.Status != "" && r.Status != f.Status {
		return false
	}
	if !f.Since.IsZero() {
		if t := r.started(); t.IsZero() || t.Before(f.Since) {
			return false
		}
	}
	return true
}

// filters reports whether f selects on anything but the limit.
func (f *Filter) filters() bool { return f.Experiment != "" || f.Status != "" || !f.Since.IsZero() }

// List returns the runs f selects, newest first. It walks back from the newest run and
// stops as soon as it has f.Limit of them, so a limit alone costs O(limit) however long
// the journal is; the other filters cost a walk until enough runs match (all of them,
// without a limit). Damaged runs are skipped: they come back as a *DamagedError, with
// the other runs.
func (j *Journal) List(f Filter) ([]Record, error) {
	if f.Limit < 0 {
		return nil, fmt.Errorf("list runs: negative limit %d", f.Limit)
	}
	out := []Record{}
	var skip skipped
	err := j.view(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketRuns).Cursor()
		var k, v []byte
		if f.Before > 0 {
			k, _ = c.Seek(idKey(f.Before))
		}
		if k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev() // the newest run before f.Before
		}
		for ; k != nil; k, v = c.Prev() {
			// A filter is judged on the summary: runs it rejects never have their params
			// and undo decoded.
			if f.filters() {
				sum, err := decodeSummary(k, v)
				if skip.add(err) {
					continue
				} else if err != nil {
					return err
				}
				if !f.match(&sum) {
					continue
				}
			}
			r, err := decodeAt(k, v)
			if skip.add(err) {
				continue
			} else if err != nil {
				return err
			}
			out = append(out, r)
			if f.Limit > 0 && len(out) == f.Limit {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return out, skip.err(j.path)
}

// eachBatch is how many runs Each reads per read transaction.
const eachBatch = 512

// Each calls fn for every run, oldest first, and returns the first error fn returns,
// unwrapped. It reads in short transactions and calls fn outside them: a long-lived
// read transaction would hold off a writer that needs to grow the file's memory map,
// that is, hold off the next Begin while an export trickles out to a slow client. fn may
// therefore be slow, or call other Journal methods. A run committed while Each is under
// way is seen if its id is past the batch being read. Damaged runs are skipped, and
// reported at the end as a *DamagedError, once fn has had every other run.
func (j *Journal) Each(fn func(Record) error) error {
	var skip skipped
	var after uint64 // id of the last run read; ids start at 1
	for {
		batch := make([]Record, 0, eachBatch)
		read := 0 // runs read, damaged ones included
		err := j.view(func(tx *bbolt.Tx) error {
			c := tx.Bucket(bucketRuns).Cursor()
			k, v := c.Seek(idKey(after + 1))
			for ; k != nil && read < eachBatch; k, v = c.Next() {
				read++
				r, err := decodeAt(k, v)
				if skip.add(err) {
					after = binary.BigEndian.Uint64(k)
					continue
				} else if err != nil {
					return err
				}
				after = r.ID
				batch = append(batch, r)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("read runs: %w", err)
		}
		for _, r := range batch {
			if err := fn(r); err != nil {
				return err
			}
		}
		if read < eachBatch || after == ^uint64(0) {
			return skip.err(j.path)
		}
	}
}
