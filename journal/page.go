package journal

import (
	"encoding/binary"
	"hash/fnv"
	"os"
)

// bbolt's on-disk format (version 2, unchanged since boltdb), the one place this package
// decodes it. Every page starts with a 16-byte header {id u64, flags u16, count u16,
// overflow u32}; pages 0 and 1 hold the two alternating meta records; a tree page's
// header is followed by count 16-byte elements, each locating its key (and value) by an
// offset from the element itself. Integers are in the host's byte order.
// page_test.go checks this against pages bbolt wrote, so an upgrade that changes the
// format fails a test rather than a user's start-up.
const (
	pageHeaderSize   = 16
	elemSize         = 16 // branch {pos, ksize u32; pgid u64}, leaf {flags, pos, ksize, vsize u32}
	metaSize         = 64 // magic, version, pageSize, flags u32; root {pgid, seq}; freelist, pgid, txid, checksum u64
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	branchPageFlag   = 0x01
	leafPageFlag     = 0x02
	freelistPageFlag = 0x10
	bucketLeafFlag   = 0x01 // leaf element flag: the value is a nested bucket
	inBucketSize     = 16   // a nested bucket's value: {root pgid, sequence u64}, then its inline page if root is 0
	noFreelist       = ^uint64(0)
)

type boltMeta struct {
	pageSize, root, freelist, pgid, txid uint64
}

// readMeta decodes and validates the meta record of the page at off (ok=false if it is
// not a valid meta record).
func readMeta(f *os.File, off int64) (m boltMeta, ok bool) {
	buf := make([]byte, pageHeaderSize+metaSize)
	if _, err := f.ReadAt(buf, off); err != nil {
		return m, false
	}
	b := buf[pageHeaderSize:]
	ne := binary.NativeEndian
	if ne.Uint32(b[0:]) != boltMagic || ne.Uint32(b[4:]) != boltVersion {
		return m, false
	}
	h := fnv.New64a()
	_, _ = h.Write(b[:56])
	if h.Sum64() != ne.Uint64(b[56:]) {
		return m, false
	}
	return boltMeta{
		pageSize: uint64(ne.Uint32(b[8:])),
		root:     ne.Uint64(b[16:]),
		freelist: ne.Uint64(b[32:]),
		pgid:     ne.Uint64(b[40:]),
		txid:     ne.Uint64(b[48:]),
	}, true
}

// header is a page's header.
type header struct {
	id       uint64
	flags    uint16
	count    uint64 // elements; for a freelist, 0xFFFF means the count is the first id
	overflow uint64 // pages that follow this one, as part of it
}

// parseHeader decodes the header at the start of b, which has at least pageHeaderSize
// bytes.
func parseHeader(b []byte) header {
	ne := binary.NativeEndian
	return header{
		id:       ne.Uint64(b[0:]),
		flags:    ne.Uint16(b[8:]),
		count:    uint64(ne.Uint16(b[10:])),
		overflow: uint64(ne.Uint32(b[12:])),
	}
}

// readHeader reads the header of page id and checks that it is that page's: a page
// that claims another id is damaged (or was never written).
func readHeader(f *os.File, role string, id, pageSize uint64) (header, error) {
	var b [pageHeaderSize]byte
	if _, err := f.ReadAt(b[:], int64(id*pageSize)); err != nil {
		return header{}, corrupt("read %s page %d: %v", role, id, err)
	}
	h := parseHeader(b[:])
	if h.id != id {
		return header{}, corrupt("%s page %d is damaged: it claims to be page %d", role, id, h.id)
	}
	return h, nil
}

// branchAt decodes element i of branch page b (a whole page, overflow included), whose
// header says it has more than i elements: its key and child page. ok is false if the
// element lies, in part, outside b. Small enough to inline: on a big journal Open
// decodes every element of a few thousand branch pages.
func branchAt(b []byte, i uint64) (key []byte, child uint64, ok bool) {
	off := pageHeaderSize + i*elemSize
	if off+elemSize > uint64(len(b)) {
		return nil, 0, false
	}
	e := b[off : off+elemSize]
	k := off + uint64(binary.NativeEndian.Uint32(e))
	end := k + uint64(binary.NativeEndian.Uint32(e[4:]))
	if end > uint64(len(b)) {
		return nil, 0, false
	}
	return b[k:end:end], binary.NativeEndian.Uint64(e[8:]), true
}

// leafAt decodes element i of leaf page b (or an inline bucket's page), as branchAt
// does: its flags, key and value.
func leafAt(b []byte, i uint64) (flags uint32, key, value []byte, ok bool) {
	off := pageHeaderSize + i*elemSize
	if off+elemSize > uint64(len(b)) {
		return 0, nil, nil, false
	}
	e := b[off : off+elemSize]
	k := off + uint64(binary.NativeEndian.Uint32(e[4:]))
	v := k + uint64(binary.NativeEndian.Uint32(e[8:]))
	end := v + uint64(binary.NativeEndian.Uint32(e[12:]))
	if end > uint64(len(b)) {
		return 0, nil, nil, false
	}
	return binary.NativeEndian.Uint32(e), b[k:v:v], b[v:end:end], true
}

// childAt is the child page of element i of branch page b, of which b need hold no more
// than that element (its key may lie beyond): what height reads.
func childAt(b []byte, i uint64) uint64 {
	return binary.NativeEndian.Uint64(b[pageHeaderSize+i*elemSize+8:])
}

// bucketValue decodes the value of a leaf element flagged bucketLeafFlag: the bucket's
// root page, or 0 and its inline page.
func bucketValue(v []byte) (root uint64, inline []byte, ok bool) {
	if len(v) < inBucketSize {
		return 0, nil, false
	}
	return binary.NativeEndian.Uint64(v), v[inBucketSize:], true
}
