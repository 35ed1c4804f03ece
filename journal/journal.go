// Package journal is chaoscron's write-ahead record of runs, kept in a bbolt file.
//
// A run's intent is committed (and fsynced) before its fault touches the system, so an
// agent that starts after a crash can find every fault left behind and reverse it. Runs
// whose cleanup is still owed are also kept in a small index, so that start-up recovery
// costs O(open runs) and not O(journal).
//
// On disk: bucket "runs" maps a big-endian uint64 run id to the run's JSON Record;
// bucket "open" maps the ids of open runs (see Record.Open) to their cleanup state;
// bucket "meta" holds the format marker, the schema version and the halt switch.
package journal

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the on-disk schema this package writes. Open refuses a journal with a
// newer one (ErrSchema) rather than guess at records it does not understand. Schema 2
// seals every record with a checksum (seal.go); Open migrates a schema 1 journal.
const SchemaVersion = 2

var (
	// ErrNotFound is returned for a run id that is not in the journal.
	ErrNotFound = errors.New("not found")
	// ErrLocked is returned when another process holds the journal file: bbolt allows one
	// writer, and while it runs not even a read-only open can get in.
	ErrLocked = errors.New("journal is locked by another process")
	// ErrCorrupt is returned when the file is not a chaoscron journal or is damaged.
	ErrCorrupt = errors.New("not a chaoscron journal or damaged")
	// ErrSchema is returned for a journal written by a newer chaoscron. Errors that
	// match it also match ErrCorrupt, so callers that only know ErrCorrupt still refuse
	// the file.
	ErrSchema = errors.New("unsupported journal schema")
)

// defaultTimeout is how long Open waits for the file lock when Options.Timeout is zero.
// bbolt's own default is to wait forever, which would hang a CLI command behind a
// running agent with no word of why.
const defaultTimeout = time.Second

// Options tune Open.
type Options struct {
	// ReadOnly takes a shared lock and never writes: inspecting a journal leaves the file
	// byte-identical, and a missing file is an error rather than created.
	ReadOnly bool
	// Timeout is how long to wait for the file lock before failing with ErrLocked;
	// 0 means one second.
	Timeout time.Duration
	// NoSync skips fsync on commit. For benchmarks only: a run committed without it is
	// not write-ahead, because a crash can lose it after the fault was applied.
	NoSync bool
}

// Journal is an open journal file. Its methods are safe for concurrent use.
type Journal struct {
	db       *bbolt.DB
	path     string
	readOnly bool

	file *os.File // bbolt's own handle, for Close to fall back on; see there

	w writer // writes waiting for a commit; see update

	openN  atomic.Int64 // size of the open index as committed; see OpenCount
	txOpen int          // its change in the transaction being committed; see commit

	found []uint64 // runs Open found damaged; see Damaged

	mu      sync.Mutex
	broken  error // set when a write found the file damaged; see update
	damaged bool  // set when any transaction found the file damaged
}

var (
	bucketMeta = []byte("meta")
	bucketRuns = []byte("runs")
	bucketOpen = []byte("open")

	keyFormat  = []byte("format")
	keySchema  = []byte("schema")
	keyCreated = []byte("created")
	keyHalt    = []byte("halt")

	// formatMarker tells a chaoscron journal from any other bbolt file, so that Open
	// never writes into someone else's database.
	formatMarker = []byte("chaoscron-journal")
)

// Open opens the journal at path, creating it (and its directory, 0700; the file is
// 0600) unless it exists or opt.ReadOnly is set. The file is checked before use: a file
// that is not a chaoscron journal, or is truncated or otherwise damaged where Open can
// see it, gives an error wrapping ErrCorrupt and naming the path. A journal held by
// another process gives ErrLocked after opt.Timeout. A writable open refuses, with
// ErrUntrusted, a journal that another user could have written (see trusted).
func Open(path string, opt Options) (*Journal, error) {
	if path == "" {
		return nil, errors.New("open journal: empty path")
	}
	timeout := opt.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	deadline := time.Now().Add(timeout)

	if !opt.ReadOnly {
		if err := trusted(path); err != nil {
			return nil, err
		}
		if err := create(path, timeout); err != nil {
			return nil, err
		}
		if err := trusted(path); err != nil {
			return nil, err
		}
	}

	// Every open starts read-only, under a shared lock. That lock keeps writers out
	// while the file is checked, and a read-only bbolt open reads nothing but the two
	// meta pages: a read-write one also loads the freelist page, and bbolt panics (or
	// faults on a page past the end of a truncated file) if that page is damaged,
	// before this package could check anything.
	ro, roFile, c, err := openChecked(path, timeout, opt.ReadOnly)
	if err != nil {
		return nil, err
	}
	if opt.ReadOnly {
		j := &Journal{db: ro, path: path, readOnly: true, file: roFile, found: c.damaged}
		j.openN.Store(int64(len(c.open)))
		return j, nil
	}
	roInfo, statErr := roFile.Stat()
	if err := ro.Close(); err != nil {
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	if statErr != nil {
		return nil, fmt.Errorf("open journal %s: %w", path, statErr)
	}

	rw, rwFile, err := boltOpen(path, &bbolt.Options{
		Timeout:      remaining(deadline),
		NoSync:       opt.NoSync,
		NoGrowSync:   opt.NoSync,            // likewise: no fsync when the file grows
		FreelistType: bbolt.FreelistMapType, // faster than the array type once pruning has freed many pages
	})
	if err != nil {
		return nil, openError(path, err)
	}
	// Between the two opens the path could have been swapped for another file (a
	// compacted copy renamed into place, say). Write only into the file that was checked.
	rwInfo, err := rwFile.Stat()
	if err != nil || !os.SameFile(roInfo, rwInfo) {
		_ = rw.Close()
		if err == nil {
			err = errors.New("file was replaced while opening; try again")
		}
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	j := &Journal{db: rw, path: path, file: rwFile, found: c.damaged}
	j.openN.Store(int64(len(c.open)))
	// The open index was counted in the commit checked. Another process may have
	// committed between the two opens: then count it again.
	if txid, err := j.txid(); err != nil || txid != c.txid {
		if err := j.count(); err != nil {
			_ = rw.Close()
			return nil, fmt.Errorf("open journal %s: %w", path, err)
		}
	}
	if err := j.migrate(); err != nil {
		_ = j.Close()
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	j.removeStaleTemps()
	return j, nil
}

// remaining is the time left until deadline, never zero: a zero bbolt Timeout means
// "wait forever".
func remaining(deadline time.Time) time.Duration {
	if d := time.Until(deadline); d > time.Millisecond {
		return d
	}
	return time.Millisecond
}

// closeWait bounds how long Close waits for bbolt once the journal has found damage.
const closeWait = 2 * time.Second

// Close closes the journal and releases its file lock.
func (j *Journal) Close() error {
	if j == nil || j.db == nil {
		return nil
	}
	j.mu.Lock()
	damaged := j.damaged
	j.mu.Unlock()
	if !damaged {
		if err := j.db.Close(); err != nil {
			return fmt.Errorf("close journal %s: %w", j.path, err)
		}
		return nil
	}
	// bbolt takes its locks before it reads a page, so a fault on a damaged meta page
	// can leave one of them held, and its Close would then wait forever. Wait a while,
	// then give up on bbolt and close its file, which releases the file lock: the next
	// agent can start and see the damage for itself.
	done := make(chan error, 1)
	go func() { done <- j.db.Close() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("close journal %s: %w", j.path, err)
		}
		return nil
	case <-time.After(closeWait):
		_ = j.file.Close()
		return fmt.Errorf("close journal %s: bbolt is stuck on the damaged file; file lock released", j.path)
	}
}

// Path is the journal's file path, as given to Open.
func (j *Journal) Path() string { return j.path }

// Damaged lists the runs whose records Open found damaged, in id order. Open checks
// every record of a journal up to 16 MiB (which retention keeps it below by default)
// and, in any journal, every open run; damage in a closed run of a bigger journal shows
// at the first read of it. A writable Open refuses a journal with a damaged open run
// (its undo cannot be trusted, nor may it be dropped), so for it this lists closed runs
// only: readers skip them with a *DamagedError, and the agent goes on.
func (j *Journal) Damaged() []uint64 { return slices.Clone(j.found) }

// openChecked opens path read-only and checks that it is a usable journal. With
// readOnly set, a damaged open run is listed with the others found damaged rather than
// refused (a read-only journal is only read, and its readers skip damaged runs), and the
// tree is held only to what bbolt needs to read it (see keyRange).
func openChecked(path string, timeout time.Duration, readOnly bool) (db *bbolt.DB, f *os.File, c checked, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, nil, c, fmt.Errorf("open journal %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, c, fmt.Errorf("open journal %s: %w: not a regular file", path, ErrCorrupt)
	}
	// An empty file is damage, not a journal waiting to be initialised: create never
	// leaves one behind (see there). bbolt would also try to initialise it, which a
	// read-only open cannot and must not do.
	if fi.Size() == 0 {
		return nil, nil, c, fmt.Errorf("open journal %s: %w: file is empty", path, ErrCorrupt)
	}
	db, f, err = boltOpen(path, &bbolt.Options{ReadOnly: true, Timeout: timeout})
	if err != nil {
		return nil, nil, c, openError(path, err)
	}
	if c, err = checkFile(f, !readOnly); err != nil {
		_ = db.Close()
		return nil, nil, c, fmt.Errorf("open journal %s: %w", path, err)
	}
	var open []uint64
	err = func() (err error) {
		defer guard(&err, func(r any) error { return fmt.Errorf("%w: damaged page: %v", ErrCorrupt, r) })()
		return db.View(func(tx *bbolt.Tx) error {
			open, err = checkTx(tx, &c, readOnly)
			return err
		})
	}()
	if err != nil {
		_ = db.Close()
		return nil, nil, c, fmt.Errorf("open journal %s: %w", path, err)
	}
	c.damaged = append(c.damaged, open...)
	slices.Sort(c.damaged)
	c.damaged = slices.Compact(c.damaged)
	return db, f, c, nil
}

// txid is the id of the journal's last commit.
func (j *Journal) txid() (id uint64, err error) {
	err = j.view(func(tx *bbolt.Tx) error { id = uint64(tx.ID()); return nil })
	return id, err
}

// boltOpen is bbolt.Open that cannot panic, and that hands back bbolt's file so the
// caller can stat it (and so a panic inside bbolt.Open can still release the lock).
func boltOpen(path string, o *bbolt.Options) (db *bbolt.DB, f *os.File, err error) {
	o.OpenFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		file, err := os.OpenFile(name, flag, perm)
		if err == nil && f == nil {
			f = file
		}
		return file, err
	}
	defer guard(&err, func(r any) error {
		if f != nil {
			_ = f.Close() // releases the flock; bbolt's mapping of the file is lost with its DB
		}
		return fmt.Errorf("%w: bbolt: %v", ErrCorrupt, r)
	})()
	db, err = bbolt.Open(path, 0o600, o)
	return db, f, err
}

// openError says what a failed bbolt.Open means for a journal.
func openError(path string, err error) error {
	var pathErr *fs.PathError
	var errno syscall.Errno
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("open journal %s: %w (probably a running chaoscron agent: query it through its API, or stop it first)", path, ErrLocked)
	case errors.Is(err, ErrCorrupt):
		return fmt.Errorf("open journal %s: %w", path, err)
	case errors.As(err, &pathErr), errors.As(err, &errno):
		return fmt.Errorf("open journal %s: %w", path, err)
	default:
		// What is left are bbolt's verdicts on the file's contents (no valid meta page,
		// wrong bbolt version, file shorter than its two meta pages), in words meant for
		// bbolt's developers. checkFile can usually say what is wrong more plainly.
		if f, ferr := os.Open(path); ferr == nil {
			_, cerr := checkFile(f, false)
			_ = f.Close()
			if cerr != nil {
				return fmt.Errorf("open journal %s: %w (bbolt: %v)", path, cerr, err)
			}
		}
		return fmt.Errorf("open journal %s: %w: bbolt: %w", path, ErrCorrupt, err)
	}
}
