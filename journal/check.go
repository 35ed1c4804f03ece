package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"

	"go.etcd.io/bbolt"
)

// guard turns a panic into an error; use it as `defer guard(&err, conv)()`.
//
// bbolt trusts the file: a damaged page makes it panic on an assertion, and a page past
// the end of a truncated file is a SIGBUS in its memory map, which would kill the
// process outright. SetPanicOnFault turns such a fault into a panic in this goroutine,
// and the recover turns both into an error, so that bad input gives a clear error and
// never a crash. bbolt's View and Update roll the transaction back while the panic
// passes through them.
func guard(err *error, conv func(r any) error) func() {
	old := debug.SetPanicOnFault(true)
	return func() {
		if r := recover(); r != nil {
			*err = conv(r)
		}
		debug.SetPanicOnFault(old)
	}
}

// corrupt is an error wrapping ErrCorrupt with a detail.
func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

// schemaError is a journal written with a newer schema. It matches both ErrSchema and
// ErrCorrupt: code that knows only ErrCorrupt must refuse the file all the same.
type schemaError struct{ found uint64 }

func (e *schemaError) Error() string {
	return fmt.Sprintf("%v: schema version %d is newer than %d, the newest this chaoscron understands; upgrade chaoscron",
		ErrSchema, e.found, SchemaVersion)
}

func (e *schemaError) Is(target error) bool { return target == ErrSchema || target == ErrCorrupt }

// Limits of what checkFile accepts (the format itself is in page.go).
const (
	minPageSize = 512
	maxPageSize = 1 << 24 // the largest page size bbolt itself probes for
	// maxFreelistIDs bounds how much checkFile reads: a freelist of this many pages
	// belongs to a file of many gigabytes, far beyond what retention allows.
	maxFreelistIDs = 1 << 24
)

// checked is what checkFile learnt of a journal besides that bbolt can read it.
type checked struct {
	txid    uint64   // the commit checked, the one bbolt will read
	open    []uint64 // the open index, in order
	damaged []uint64 // runs whose records are damaged, in order (see checkTree): damage inside a record, unlike damage to the file's structure, leaves every other run readable
}

// checkFile checks the few words bbolt relies on before it reads anything else: the meta
// pages it will choose, that the file is as long as its last commit says, and the root
// and freelist pages. A read-write bbolt.Open trusts all of them (it loads the freelist
// straight away), so a damaged one would panic or fault there.
//
// It mirrors bbolt's own choice of meta page: the valid one with the higher txid.
//
// It returns what the check found out on the way (see checked). With writable set it
// holds the tree to what bbolt needs to write it (see keyRange), not only to read it.
func checkFile(f *os.File, writable bool) (c checked, err error) {
	fi, err := f.Stat()
	if err != nil {
		return c, err
	}
	size := fi.Size()

	// bbolt finds the page size in meta 0, or else probes for meta 1 at 1 KiB, 2 KiB, …
	var pageSize uint64
	if m, ok := readMeta(f, 0); ok {
		pageSize = m.pageSize
	} else {
		for i := 0; i <= 14; i++ {
			off := int64(1024) << i
			if off >= size-1024 {
				break
			}
			if m, ok := readMeta(f, off); ok {
				pageSize = m.pageSize
				break
			}
		}
	}
	if pageSize == 0 {
		return c, corrupt("no valid bbolt meta page in its %d bytes", size)
	}
	if pageSize < minPageSize || pageSize > maxPageSize || pageSize&(pageSize-1) != 0 {
		return c, corrupt("implausible page size %d", pageSize)
	}
	if uint64(size) < 2*pageSize {
		return c, corrupt("truncated: %d bytes, shorter than the two meta pages", size)
	}
	m0, ok0 := readMeta(f, 0)
	m1, ok1 := readMeta(f, int64(pageSize))
	var m boltMeta
	switch {
	case ok0 && ok1:
		m = m0
		if m1.txid > m0.txid {
			m = m1
		}
	case ok0:
		m = m0
	case ok1:
		m = m1
	default:
		return c, corrupt("no valid bbolt meta page")
	}
	if m.pageSize != pageSize {
		return c, corrupt("meta pages disagree on the page size")
	}

	pages := uint64(size) / pageSize
	if m.pgid < 4 {
		return c, corrupt("implausible high-water mark: page %d", m.pgid)
	}
	if m.pgid > pages {
		return c, corrupt("truncated: %d bytes, but the last commit uses %d pages of %d bytes (%d bytes)",
			size, m.pgid, pageSize, m.pgid*pageSize)
	}
	if m.root < 2 || m.root >= m.pgid {
		return c, corrupt("root page %d out of range [2, %d)", m.root, m.pgid)
	}
	if h, err := readHeader(f, "root", m.root, pageSize); err != nil {
		return c, err
	} else if h.flags != branchPageFlag && h.flags != leafPageFlag {
		return c, corrupt("root page %d is not a tree page (flags %#x)", m.root, h.flags)
	}
	// chaoscron always syncs the freelist: a file without one was written by someone
	// else, and bbolt would rebuild the list by walking every page in a goroutine that
	// panics, beyond any recover, if one is damaged.
	if m.freelist == noFreelist {
		return c, corrupt("no freelist (not written by chaoscron)")
	}
	free, err := checkFreelist(f, m, pageSize)
	if err != nil {
		return c, err
	}
	c.txid = m.txid
	c.open, c.damaged, err = checkTree(f, m, free, size <= fullCheckBytes, writable)
	return c, err
}

// checkFreelist checks the freelist page and the ids in it, which bbolt loads (and
// asserts on) while opening read-write. It returns the free page ids, sorted.
func checkFreelist(f *os.File, m boltMeta, pageSize uint64) (ids []uint64, err error) {
	if m.freelist < 2 || m.freelist >= m.pgid {
		return nil, corrupt("freelist page %d out of range [2, %d)", m.freelist, m.pgid)
	}
	h, err := readHeader(f, "freelist", m.freelist, pageSize)
	if err != nil {
		return nil, err
	}
	count, overflow := h.count, h.overflow
	if h.flags != freelistPageFlag {
		return nil, corrupt("freelist page %d has flags %#x", m.freelist, h.flags)
	}
	if overflow >= m.pgid-m.freelist {
		return nil, corrupt("freelist page %d overflows the file (%d more pages)", m.freelist, overflow)
	}
	base := int64(m.freelist*pageSize + pageHeaderSize)
	// A count of 0xFFFF means the real count is stored as the first id.
	if count == 0xFFFF {
		var b [8]byte
		if _, err := f.ReadAt(b[:], base); err != nil {
			return nil, corrupt("read freelist: %v", err)
		}
		count = binary.NativeEndian.Uint64(b[:])
		base += 8
	}
	room := ((overflow+1)*pageSize - uint64(base-int64(m.freelist*pageSize))) / 8
	if count > room || count > maxFreelistIDs {
		return nil, corrupt("freelist claims %d pages, room for %d", count, room)
	}
	raw := make([]byte, count*8)
	if _, err := f.ReadAt(raw, base); err != nil && err != io.EOF {
		return nil, corrupt("read freelist: %v", err)
	}
	ids = make([]uint64, count)
	for i := range ids {
		ids[i] = binary.NativeEndian.Uint64(raw[i*8:])
	}
	slices.Sort(ids)
	for i, id := range ids {
		if id < 2 || id >= m.pgid {
			return nil, corrupt("freelist holds page %d, out of range [2, %d)", id, m.pgid)
		}
		if i > 0 && ids[i-1] == id {
			return nil, corrupt("freelist holds page %d twice", id)
		}
	}
	// The freelist's own pages are neither free nor in the tree.
	for id := m.freelist; id <= m.freelist+overflow; id++ {
		if _, found := slices.BinarySearch(ids, id); found {
			return nil, corrupt("freelist page %d lists itself as free", id)
		}
	}
	return ids, nil
}

// fullCheckBytes is the file size up to which Open reads and checks every page of the
// tree (a few milliseconds; default retention keeps a journal below it), so damage
// anywhere shows at Open rather than at the first `journal list`. Above it, Open reads the
// branch pages and the small buckets, but not the leaves of the runs bucket, to stay fast
// on a big journal.
const fullCheckBytes = 16 << 20

// checkTx checks, inside a read transaction of the commit checkFile checked (c), that
// the file is a chaoscron journal of a schema this code understands, and reads
// everything start-up recovery will need: every run in c.open, the open index as
// checkTree read it (one walk of the index serves the check, this and OpenCount). A
// damaged open run is refused, unless tolerant: then it is returned in damaged.
func checkTx(tx *bbolt.Tx, c *checked, tolerant bool) (damaged []uint64, err error) {
	if uint64(tx.ID()) != c.txid {
		// Both follow bbolt's choice of meta page, so this is a bug, not damage; but
		// the tree checked would not be the one about to be read.
		return nil, corrupt("bbolt reads commit %d, the check read commit %d", tx.ID(), c.txid)
	}
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return nil, corrupt("no %q bucket", bucketMeta)
	}
	if !bytes.Equal(meta.Get(keyFormat), formatMarker) {
		return nil, corrupt("no chaoscron format marker in the %q bucket", bucketMeta)
	}
	v := meta.Get(keySchema)
	if len(v) != 8 {
		return nil, corrupt("schema version is %d bytes, want 8", len(v))
	}
	switch schema := binary.BigEndian.Uint64(v); {
	case schema == 0:
		return nil, corrupt("schema version 0")
	case schema > SchemaVersion:
		return nil, &schemaError{found: schema}
	}
	if h := meta.Get(keyHalt); h != nil {
		if _, err := decodeHalt(h); err != nil {
			return nil, err
		}
	}
	runs, open := tx.Bucket(bucketRuns), tx.Bucket(bucketOpen)
	if runs == nil || open == nil {
		return nil, corrupt("missing %q or %q bucket", bucketRuns, bucketOpen)
	}

	// The next Begin takes runs.NextSequence() as its id: were the sequence behind
	// the last key, it would hand out an id that is already taken.
	if k, _ := runs.Cursor().Last(); k != nil {
		if len(k) != 8 {
			return nil, corrupt("run key of %d bytes", len(k))
		}
		if id := binary.BigEndian.Uint64(k); id > runs.Sequence() {
			return nil, corrupt("run %d is beyond the id sequence (%d)", id, runs.Sequence())
		}
	}

	// Every open run, as recovery will read it.
	for _, id := range c.open {
		v := runs.Get(idKey(id))
		if v == nil {
			return nil, corrupt("open index names run %d, which is missing", id)
		}
		r, err := decodeRecord(id, v)
		if errors.Is(err, ErrDamaged) && tolerant {
			damaged = append(damaged, id)
			continue
		} else if errors.Is(err, ErrDamaged) {
			return nil, fmt.Errorf("%w; it is an open run, a fault to reverse, whose undo cannot be trusted: "+
				"refusing to start (`chaoscron journal list` shows the rest; revert the fault by hand, then delete or restore the journal)", err)
		} else if err != nil {
			return nil, err
		}
		if !r.Open() {
			return nil, corrupt("open index names run %d, whose cleanup is %q", id, r.Cleanup)
		}
	}
	return damaged, nil
}
