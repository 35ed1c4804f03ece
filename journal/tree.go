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
// a journal's worth of them costs well under a millisecond. It returns the ids in the
// open index too, which it reads anyway (see mustRead).
//
// With strict set it holds pages to the rule bbolt needs to write them, not only to read
// them (see keyRange): for a writable open.
func checkTree(f *os.File, m boltMeta, free []uint64, full, strict bool) (open, damaged []uint64, err error) {
	t := &tree{f: f, pageSize: m.pageSize, hwm: m.pgid, free: free, seen: make([]bool, m.pgid), full: full, strict: strict}
	// The freelist's pages are in use, but not by the tree: a tree pointer at them is
	// damage too.
	h, err := readHeader(f, "freelist", m.freelist, m.pageSize)
	if err != nil {
		return nil, nil, err
	}
	if err := t.claim(m.freelist, h.overflow); err != nil {
		return nil, nil, err
	}
	if err := t.bucket(m.root, nil, 0, true, true); err != nil {
		return nil, nil, err
	}
	open = make([]uint64, len(t.openKeys))
	for i, k := range t.openKeys {
		open[i] = binary.BigEndian.Uint64(k) // 8 bytes: leaf checked
	}
	return open, t.damaged, nil
}

// maxTreeDepth bounds the pages from the root to a leaf, nested buckets included.
const maxTreeDepth = 64

type tree struct {
	f        *os.File
	pageSize uint64
	hwm      uint64   // the high-water mark: pages at or beyond it are not in use
	free     []uint64 // sorted
	seen     []bool   // pages met so far
	full     bool
	strict   bool     // hold pages to the first-key rule (see keyRange)
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
// process pays for every new page of heap it touches (dearly in a VM that backs memory
// lazily), and a big journal has thousands of branch pages to read.
func (t *tree) level(depth int) *[]byte {
	for len(t.bufs) <= depth {
		t.bufs = append(t.bufs, nil)
	}
	return &t.bufs[depth]
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
func (t *tree) read(id uint64, depth int) (h header, b []byte, err error) {
	if id < 2 || id >= t.hwm {
		return header{}, nil, corrupt("tree page %d out of range [2, %d)", id, t.hwm)
	}
	buf := t.level(depth)
	b, err = t.span(buf, id*t.pageSize, t.pageSize)
	if err != nil {
		return header{}, nil, err
	}
	h = parseHeader(b)
	if h.id != id {
		return header{}, nil, corrupt("tree page %d is damaged: it claims to be page %d", id, h.id)
	}
	if err := t.claim(id, h.overflow); err != nil {
		return header{}, nil, err
	}
	if h.overflow > 0 {
		if b, err = t.span(buf, id*t.pageSize, (h.overflow+1)*t.pageSize); err != nil {
			return header{}, nil, err
		}
	}
	if pageHeaderSize+h.count*elemSize > uint64(len(b)) {
		return header{}, nil, corrupt("tree page %d claims %d elements, more than fit", id, h.count)
	}
	return h, b, nil
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
		h := parseHeader(inline)
		if h.flags != leafPageFlag || pageHeaderSize+h.count*elemSize > uint64(len(inline)) {
			return corrupt("inline bucket is not a leaf of %d elements", h.count)
		}
		// bbolt inlines only buckets without nested buckets.
		return t.leaf(inline, h.count, depth, false, keyRange{})
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
	var buf []byte
	for h := 0; h <= maxTreeDepth; h++ {
		if id < 2 || id >= t.hwm {
			return 0, corrupt("tree page %d out of range [2, %d)", id, t.hwm)
		}
		b, err := t.span(&buf, id*t.pageSize, pageHeaderSize+elemSize)
		if err != nil {
			return 0, err
		}
		p := parseHeader(b)
		switch {
		case p.id != id:
			return 0, corrupt("tree page %d is damaged: it claims to be page %d", id, p.id)
		case p.flags == leafPageFlag:
			return h, nil
		case p.flags != branchPageFlag || p.count == 0:
			return 0, corrupt("tree page %d is neither a leaf nor a branch (flags %#x, %d elements)", id, p.flags, p.count)
		}
		id = childAt(b, 0)
	}
	return 0, corrupt("tree deeper than %d pages", maxTreeDepth)
}

// keyRange is what a page's keys must keep to: every one must be at least lo, the key
// the parent files the page under (nil for a bucket's root), and below hi, where the
// parent's next page begins (nil: no bound). That is all bbolt's own Check asks, and all
// a reader needs.
//
// A writer needs more: that the first key is lo. When bbolt writes a page back it finds
// the parent's entry by the page's old first key, and where they differ it adds a
// second entry instead of replacing the first, which cross-links the tree on the next
// commit (FuzzOpen found a file that a single Begin turned into a runs bucket whose
// cursor ran on into the meta bucket; TestFirstKeyRule shows bbolt's Check accepting
// such a file, and rejecting it after one Put). bbolt itself always writes a page's
// first key into its parent (node.spill), deletes included, so every file it writes
// keeps to this (TestEveryJournalPassesBothChecks); a writable Open holds files to it
// (strict), a read-only one only to bbolt's rule.
type keyRange struct{ lo, hi []byte }

// checkKeys checks the count elements of page (or inline bucket) b: each lies inside b,
// their keys ascend, and they keep to r (see keyRange for strict). It keeps no keys: on
// a big journal a slice of them per page was a fifth of Open's time.
func checkKeys(b []byte, count uint64, branch, strict bool, r keyRange) error {
	var prev []byte
	for i := range count {
		var k []byte
		var ok bool
		if branch {
			k, _, ok = branchAt(b, i)
		} else {
			_, k, _, ok = leafAt(b, i)
		}
		switch {
		case !ok:
			return fmt.Errorf("element %d runs off its page", i)
		case len(k) == 0:
			return fmt.Errorf("element %d has an empty key", i)
		case i > 0 && bytes.Compare(prev, k) >= 0:
			return fmt.Errorf("keys out of order: %x after %x", k, prev)
		case i == 0 && r.lo != nil && strict && !bytes.Equal(k, r.lo):
			return fmt.Errorf("a page filed under key %x does not start with it, but with %x", r.lo, k)
		case i == 0 && r.lo != nil && bytes.Compare(k, r.lo) < 0:
			return fmt.Errorf("a page filed under key %x does not start with it, but below it, with %x", r.lo, k)
		}
		prev = k
	}
	switch {
	case r.lo != nil && count == 0 && strict:
		return fmt.Errorf("a page filed under key %x does not start with it: it is empty", r.lo)
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
	h, b, err := t.read(id, depth)
	if err != nil {
		return err
	}
	if level == 0 {
		if h.flags != leafPageFlag {
			return corrupt("tree page %d should be a leaf, has flags %#x (the tree is unbalanced)", id, h.flags)
		}
		return t.leaf(b, h.count, depth, top, r)
	}
	if h.flags != branchPageFlag || h.count == 0 {
		return corrupt("tree page %d should be a branch, has flags %#x and %d elements", id, h.flags, h.count)
	}
	if err := checkKeys(b, h.count, true, t.strict, r); err != nil {
		return corrupt("tree page %d: %v", id, err)
	}
	key, child, _ := branchAt(b, 0) // checkKeys checked every element
	for i := range h.count {
		sub := keyRange{lo: key, hi: r.hi}
		c := child
		if i+1 < h.count {
			key, child, _ = branchAt(b, i+1)
			sub.hi = key
		}
		if err := t.node(c, level-1, depth+1, leaves, top, sub, left && i == 0, right && i == h.count-1); err != nil {
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
	if err := checkKeys(b, count, false, t.strict, r); err != nil {
		return corrupt("leaf: %v", err)
	}
	for i := range count {
		flags, key, value, _ := leafAt(b, i) // checkKeys checked it
		if flags&bucketLeafFlag == 0 {
			switch {
			case t.inRuns:
				// Keys of runs must be ids, and ascend from leaf to leaf too (leaves
				// are met in key order).
				if len(key) != 8 || (t.lastRun != nil && bytes.Compare(key, t.lastRun) <= 0) {
					return corrupt("run key %x is not an id after %x", key, t.lastRun)
				}
				t.lastRun = append(t.lastRun[:0], key...) // the page buffer is reused
				if t.full {
					id := binary.BigEndian.Uint64(key)
					if _, err := unseal(id, key, value); err != nil {
						t.damaged = append(t.damaged, id)
					}
				}
			case t.inOpen:
				if len(key) != 8 {
					return corrupt("open-index key of %d bytes", len(key))
				}
				t.openKeys = append(t.openKeys, bytes.Clone(key))
			}
			continue
		}
		if !nested {
			return corrupt("leaf element %d is flagged as a nested bucket, where a journal has none", i)
		}
		root, inline, ok := bucketValue(value)
		if !ok {
			return corrupt("nested bucket header of %d bytes", len(value))
		}
		// Read the leaves of every bucket but the runs: the others hold the meta and the
		// open runs, which Open reads anyway, and whatever a foreign file has. The open
		// bucket sorts before the runs, so its keys are known when the runs are walked.
		runs := string(key) == string(bucketRuns)
		t.inRuns, t.inOpen = runs, string(key) == string(bucketOpen)
		err := t.bucket(root, inline, depth+1, t.full || !runs, false)
		t.inRuns, t.inOpen = false, false
		if err != nil {
			return err
		}
	}
	return nil
}
