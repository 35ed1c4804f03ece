package memory

import "unsafe"

// pattern is the data fill writes: eight xorshift64 sequences, interleaved word by word. It is
// state to carry on with, so that a fill in chunks writes what one fill of the whole would.
//
// Eight, not one: each xorshift step depends on the one before, so a single sequence makes
// one word every few cycles, far slower than the memory takes the writes. Eight independent
// ones keep the processor's units busy, within sight of clear() (BenchmarkPattern; figures in
// docs/performance.md).
//
// No word is ever zero (xorshift64 never leaves a non-zero state for 0), a sequence repeats no
// word in 2⁶⁴−1 steps, and the eight start at unrelated points of it: two pages are alike only
// by a chance far below one in a million even for terabytes. So neither zswap, KSM nor a
// compressing swap device can make the pages cheaper than their size.
type pattern [8]uint64

// newPattern derives the eight starting points from seed with splitmix64, whose outputs for
// distinct inputs are distinct.
func newPattern(seed uint64) pattern {
	var p pattern
	for i := range p {
		seed += 0x9e3779b97f4a7c15
		z := seed
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		p[i] = (z ^ z>>31) | 1 // xorshift must not start at 0
	}
	return p
}

// fill writes the next words of the pattern over b, a multiple of 64 bytes and 8-byte
// aligned: it is always a whole number of pages of a mapping.
func (p *pattern) fill(b []byte) {
	w := unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/8)
	// Eight locals rather than a loop over p: the compiler keeps locals in registers, an
	// array's elements in memory. xorshift is inlined: as fast as the steps written out.
	a0, a1, a2, a3, a4, a5, a6, a7 := p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]
	for ; len(w) >= 8; w = w[8:] {
		a0, a1, a2, a3 = xorshift(a0), xorshift(a1), xorshift(a2), xorshift(a3)
		a4, a5, a6, a7 = xorshift(a4), xorshift(a5), xorshift(a6), xorshift(a7)
		w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7] = a0, a1, a2, a3, a4, a5, a6, a7
	}
	*p = pattern{a0, a1, a2, a3, a4, a5, a6, a7}
}

// xorshift is one step of Marsaglia's xorshift64 (13, 7, 17). Small enough to be inlined.
func xorshift(x uint64) uint64 {
	x ^= x << 13
	x ^= x >> 7
	return x ^ x<<17
}
