package journal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"slices"
)

// checkTree walks bbolt's B+tree from the file, before bbolt is let loose on it.
//
// bbolt follows page ids wherever they point. A damaged branch element that points
// back at an ancestor sends its cursors down an endless descent (found by FuzzOpen: the
// cursor's stack grows until memory runs out, which no recover can catch), and an
// element whose key runs off its page reads beyond it. So Open first checks that the
// tree really is a tree: every page in range and neither free nor reached twice, page
// types where they belong, every element inside its page, and no deeper than bbolt
// could ever build.
//
// With full set every page is read, and the runs keys are checked to be ids in order.
// Otherwise most leaves of the runs bucket are only counted, not read (see mustRead
// for those that are): bbolt keeps all leaves of a tree at the same depth, so once the
// branch pages check out, a pointer at the leaf level cannot lead back up the tree
// unless it points at a page outside it, which no chaoscron write produces.
//
// With full set it also checks the seal of every run (see seal.go), and returns the ids
// of the runs whose records are damaged: the pages are in memory already, and CRC-32C of
// a journal's worth of them costs well under a millisecond.
func checkTree(f *os.File, m boltMeta, free []uint64, full bool) (damaged []uint64, err error) {
	t := &tree{f: f, pageSize: m.pageSize, hwm: m.pgid, free: free, seen: make([]bool, m.pgid), full: full}
	// The freelist's pages are in use, but not by the tree: a tree pointer at them is
	// damage too.
	_, _, overflow, err := t.header(m.freelist)
	if err != nil {
		return nil, err
	}
	if err := t.claim(m.freelist, overflow); err != nil {
		return nil, err
	}
	if err := t.bucket(m.root, nil, 0, true, true); err != nil {
		return nil, err
	}
	return t.damaged, nil
}

// Layout of the pages and elements checkTree reads (see check.go for the page header).
const (
	elemSize       = 16   // branch {pos, ksize u32; pgid u64}, leaf {flags, pos, ksize, vsize u32}
	bucketLeafFlag = 0x01 // leaf element flag: the value is a nested bucket
	inBucketSize   = 16   // a nested bucket's value: {root pgid, sequence u64}, then its inline page if root is 0
	maxTreeDepth   = 64   // pages from the root to a leaf, nested buckets included
)

type tree struct {
	f        *os.File
	pageSize uint64
	hwm      uint64   // the high-water mark: pages at or beyond it are not in use
	free     []uint64 // sorted
	seen     []bool   // pages met so far
	full     bool
	bufs     [][]byte // see level

	inRuns   bool     // walking the runs bucket
	inOpen   bool     // walking the open index
	lastRun  []byte   // a copy of the last run key met, to check that keys are ids in order
	openKeys [][]byte // copies of the keys of the open index, in order
	damaged  []uint64 // runs whose seal does not match (read only with full)
}

// span reads n bytes at off into buf, reusing its array when it is big enough; callers keep
// off+n within the high-water mark.
//
// A read per page, even where every page is read: reading the whole file into memory at
// once was faster only in a process whose heap had grown before. At an agent's start, the
// fresh pages of heap cost more than the reads (figures in docs/performance.md).
func (t *tree) span(buf *[]byte, off, n uint64) ([]byte, error) {
	if uint64(cap(*buf)) < n {
		*buf = make([]byte, n)
	}
	b := (*buf)[:n]
	if _, err := t.f.ReadAt(b, int64(off)); err != nil {
		return nil, corrupt("read at %d: %v", off, err)
	}
	return b, nil
}

// level is the buffer for pages read at depth: a page stays in use while the pages below
// it are walked, and no longer. One buffer per depth rather than one per page: a fresh
// process pays for every new page of heap it touches (about 15 µs each in a VM that backs
// memory lazily), and a big journal has thousands of branch pages to read.
func (t *tree) level(depth int) *[]byte {
	for len(t.bufs) <= depth {
		t.bufs = append(t.bufs, nil)
	}
	return &t.bufs[depth]
}

// header reads and checks the header of page id, which must be below the high-water
// mark.
func (t *tree) header(id uint64) (count uint64, flags uint16, overflow uint64, err error) {
	var buf []byte
	h, err := t.span(&buf, id*t.pageSize, pageHeaderSize)
	if err != nil {
		return 0, 0, 0, err
	}
	ne := binary.NativeEndian
	if got := ne.Uint64(h[0:]); got != id {
		return 0, 0, 0, corrupt("page %d is damaged: it claims to be page %d", id, got)
	}
	return uint64(ne.Uint16(h[10:])), ne.Uint16(h[8:]), uint64(ne.Uint32(h[12:])), nil
}

// claim marks pages id..id+overflow as met, refusing any met before or free.
func (t *tree) claim(id, overflow uint64) error {
	if id < 2 || id >= t.hwm || overflow >= t.hwm-id {
		return corrupt("tree page %d (+%d) out of range [2, %d)", id, overflow, t.hwm)
	}
	for p := id; p <= id+overflow; p++ {
		if t.seen[p] {
			return corrupt("tree page %d is reached twice: the tree has a cycle or shares pages", p)
		}
		if _, found := slices.BinarySearch(t.free, p); found {
			return corrupt("tree page %d is also on the freelist", p)
		}
		t.seen[p] = true
	}
	return nil
}

// read reads page id whole (with its overflow pages) and claims it. The first page comes
// in one read with its header, which is what a read costs on a big journal: most pages
// read are branches without overflow.
func (t *tree) read(id uint64, depth int) (flags uint16, count uint64, b []byte, err error) {
	if id < 2 || id >= t.hwm {
		return 0, 0, nil, corrupt("tree page %d out of range [2, %d)", id, t.hwm)
	}
	buf := t.level(depth)
	b, err = t.span(buf, id*t.pageSize, t.pageSize)
	if err != nil {
		return 0, 0, nil, err
	}
	ne := binary.NativeEndian
	if got := ne.Uint64(b[0:]); got != id {
		return 0, 0, nil, corrupt("page %d is damaged: it claims to be page %d", id, got)
	}
	flags, count = ne.Uint16(b[8:]), uint64(ne.Uint16(b[10:]))
	overflow := uint64(ne.Uint32(b[12:]))
	if err := t.claim(id, overflow); err != nil {
		return 0, 0, nil, err
	}
	if overflow > 0 {
		if b, err = t.span(buf, id*t.pageSize, (overflow+1)*t.pageSize); err != nil {
			return 0, 0, nil, err
		}
	}
	if pageHeaderSize+count*elemSize > uint64(len(b)) {
		return 0, 0, nil, corrupt("tree page %d claims %d elements, more than fit", id, count)
	}
	return flags, count, b, nil
}

// bucket checks the tree of a bucket: the one rooted at page root, or, if root is 0,
// the inline page (a bucket small enough to live in its parent's leaf). leaves says
// whether to read its leaf pages; top, whether it is the root bucket, the only one in
// a journal that holds buckets.
func (t *tree) bucket(root uint64, inline []byte, depth int, leaves, top bool) error {
	if depth > maxTreeDepth {
		return corrupt("tree deeper than %d pages", maxTreeDepth)
	}
	if root == 0 {
		if len(inline) < pageHeaderSize {
			return corrupt("inline bucket of %d bytes", len(inline))
		}
		ne := binary.NativeEndian
		count := uint64(ne.Uint16(inline[10:]))
		if ne.Uint16(inline[8:]) != leafPageFlag || pageHeaderSize+count*elemSize > uint64(len(inline)) {
			return corrupt("inline bucket is not a leaf of %d elements", count)
		}
		// bbolt inlines only buckets without nested buckets.
		return t.leaf(inline, count, depth, false, keyRange{})
	}
	height, err := t.height(root)
	if err != nil {
		return err
	}
	return t.node(root, height, depth, leaves, top, keyRange{}, true, true)
}

// height counts the levels above the leaves, down the leftmost path. It only looks:
// node claims the pages when it walks them.
func (t *tree) height(id uint64) (int, error) {
	for h := 0; h <= maxTreeDepth; h++ {
		if id < 2 || id >= t.hwm {
			return 0, corrupt("tree page %d out of range [2, %d)", id, t.hwm)
		}
		count, flags, _, err := t.header(id)
		if err != nil {
			return 0, err
		}
		switch {
		case flags == leafPageFlag:
			return h, nil
		case flags != branchPageFlag || count == 0:
			return 0, corrupt("tree page %d is neither a leaf nor a branch (flags %#x, %d elements)", id, flags, count)
		}
		var buf []byte
		e, err := t.span(&buf, id*t.pageSize+pageHeaderSize, elemSize)
		if err != nil {
			return 0, err
		}
		id = binary.NativeEndian.Uint64(e[8:])
	}
	return 0, corrupt("tree deeper than %d pages", maxTreeDepth)
}

// keyRange is what a page's keys must keep to: the first must be lo, the key the
// parent files the page under (nil for a bucket's root), and every one must be below hi,
// where the parent's next page begins (nil: no bound). bbolt relies on the first: when
// it writes a page back it finds the parent's entry by the page's old first key, and
// where they differ it adds a second entry instead of replacing the first, which
// cross-links the tree on the next commit (FuzzOpen found a file that a single Begin
// turned into a runs bucket whose cursor ran on into the meta bucket).
type keyRange struct{ lo, hi []byte }

// keyAt is the key of element i of page (or inline bucket) b; checkKeys must have
// passed on b.
func keyAt(b []byte, i uint64, branch bool) []byte {
	ne := binary.NativeEndian
	e := pageHeaderSize + i*elemSize
	pos, ksize := uint64(ne.Uint32(b[e+4:])), uint64(ne.Uint32(b[e+8:]))
	if branch {
		pos, ksize = uint64(ne.Uint32(b[e:])), uint64(ne.Uint32(b[e+4:]))
	}
	return b[e+pos : e+pos+ksize]
}

// checkKeys checks the count elements of page (or inline bucket) b: each lies inside b,
// their keys ascend, and they keep to r. It keeps no keys (keyAt finds them again): on a
// big journal a slice of them per page was a fifth of Open's time.
func checkKeys(b []byte, count uint64, branch bool, r keyRange) error {
	ne := binary.NativeEndian
	var prev []byte
	for i := range count {
		e := pageHeaderSize + i*elemSize
		pos, ksize := uint64(ne.Uint32(b[e+4:])), uint64(ne.Uint32(b[e+8:]))
		end := e + pos + ksize + uint64(ne.Uint32(b[e+12:])) // key and value
		if branch {
			pos, ksize = uint64(ne.Uint32(b[e:])), uint64(ne.Uint32(b[e+4:]))
			end = e + pos + ksize
		}
		if end > uint64(len(b)) {
			return fmt.Errorf("element %d runs off its page", i)
		}
		k := b[e+pos : e+pos+ksize]
		switch {
		case ksize == 0:
			return fmt.Errorf("element %d has an empty key", i)
		case i > 0 && bytes.Compare(prev, k) >= 0:
			return fmt.Errorf("keys out of order: %x after %x", k, prev)
		case i == 0 && r.lo != nil && !bytes.Equal(k, r.lo):
			return fmt.Errorf("a page filed under key %x does not start with it", r.lo)
		}
		prev = k
	}
	switch {
	case r.lo != nil && count == 0:
		return fmt.Errorf("a page filed under key %x does not start with it", r.lo)
	case r.hi != nil && count > 0 && bytes.Compare(prev, r.hi) >= 0:
		return fmt.Errorf("key %x is not below %x, where the next page begins", prev, r.hi)
	}
	return nil
}

// node checks page id, level levels above the leaves, and what hangs below it. left
// and right say whether it lies on its bucket's leftmost or rightmost path.
func (t *tree) node(id uint64, level, depth int, leaves, top bool, r keyRange, left, right bool) error {
	if depth > maxTreeDepth {
		return corrupt("tree deeper than %d pages", maxTreeDepth)
	}
	if level == 0 && !leaves && !t.mustRead(r, left, right) {
		// A leaf not to be read: claim its page, which is all a cursor could be misled
		// by. Its overflow pages stay unclaimed; that is data, not structure.
		return t.claim(id, 0)
	}
	flags, count, b, err := t.read(id, depth)
	if err != nil {
		return err
	}
	if level == 0 {
		if flags != leafPageFlag {
			return corrupt("tree page %d should be a leaf, has flags %#x (the tree is unbalanced)", id, flags)
		}
		return t.leaf(b, count, depth, top, r)
	}
	if flags != branchPageFlag || count == 0 {
		return corrupt("tree page %d should be a branch, has flags %#x and %d elements", id, flags, count)
	}
	if err := checkKeys(b, count, true, r); err != nil {
		return corrupt("tree page %d: %v", id, err)
	}
	ne := binary.NativeEndian
	for i := uint64(0); i < count; i++ {
		sub := keyRange{lo: keyAt(b, i, true), hi: r.hi}
		if i+1 < count {
			sub.hi = keyAt(b, i+1, true)
		}
		child := ne.Uint64(b[pageHeaderSize+i*elemSize+8:])
		if err := t.node(child, level-1, depth+1, leaves, top, sub, left && i == 0, right && i == count-1); err != nil {
			return err
		}
	}
	return nil
}

// mustRead says whether a leaf of the runs bucket must be read even where Open does not
// read them all: the first and the last, which Prune and Begin write to first, and
// those holding open runs, which recovery updates. A write to a leaf whose parent files
// it wrongly is what cross-links a tree (see keyRange).
func (t *tree) mustRead(r keyRange, left, right bool) bool {
	if left || right {
		return true
	}
	i, _ := slices.BinarySearchFunc(t.openKeys, r.lo, bytes.Compare)
	return i < len(t.openKeys) && (r.hi == nil || bytes.Compare(t.openKeys[i], r.hi) < 0)
}

// leaf checks the elements of a leaf page (or inline bucket) b, and the buckets nested
// in it if nested is allowed; bbolt would follow a bucket flag anywhere, and without a
// bound when it leads back to a bucket already on the way.
func (t *tree) leaf(b []byte, count uint64, depth int, nested bool, r keyRange) error {
	if err := checkKeys(b, count, false, r); err != nil {
		return corrupt("leaf: %v", err)
	}
	ne := binary.NativeEndian
	for i := range count {
		key := keyAt(b, i, false)
		e := pageHeaderSize + i*elemSize
		flags, pos := ne.Uint32(b[e:]), uint64(ne.Uint32(b[e+4:]))
		ksize, vsize := uint64(ne.Uint32(b[e+8:])), uint64(ne.Uint32(b[e+12:]))
		if flags&bucketLeafFlag == 0 {
			switch {
			case t.inRuns:
				// Keys of runs must be ids, and ascend from leaf to leaf too (leaves
				// are met in key order).
				if len(key) != 8 || (t.lastRun != nil && bytes.Compare(key, t.lastRun) <= 0) {
					return corrupt("run key %x is not an id after %x", key, t.lastRun)
				}
				t.lastRun = append(t.lastRun[:0], key...) // key's page buffer is reused
				if t.full {
					id := binary.BigEndian.Uint64(key)
					if _, err := unseal(id, key, b[e+pos+ksize:e+pos+ksize+vsize]); err != nil {
						t.damaged = append(t.damaged, id)
					}
				}
			case t.inOpen:
				t.openKeys = append(t.openKeys, bytes.Clone(key))
			}
			continue
		}
		if !nested {
			return corrupt("leaf element %d is flagged as a nested bucket, where a journal has none", i)
		}
		v := b[e+pos+ksize : e+pos+ksize+vsize]
		if len(v) < inBucketSize {
			return corrupt("nested bucket header of %d bytes", len(v))
		}
		// Read the leaves of every bucket but the runs: the others hold the meta and the
		// open runs, which Open reads anyway, and whatever a foreign file has. The open
		// bucket sorts before the runs, so its keys are known when the runs are walked.
		runs := string(key) == string(bucketRuns)
		t.inRuns, t.inOpen = runs, string(key) == string(bucketOpen)
		err := t.bucket(ne.Uint64(v), v[inBucketSize:], depth+1, t.full || !runs, false)
		t.inRuns, t.inOpen = false, false
		if err != nil {
			return err
		}
	}
	return nil
}
