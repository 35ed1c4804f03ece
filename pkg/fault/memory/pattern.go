package memory

import "unsafe"

// pattern is the data fill writes: eight xorshift64 sequences, interleaved word by word. It is
// state to carry on with, so that a fill in chunks writes what one fill of the whole would.
//
// Eight, not one: each xorshift step depends on the one before, so a single sequence makes
// one word every few cycles, about 4 GiB/s here, far slower than the memory takes the writes.
// Eight independent ones keep the processor's units busy: 13 GiB/s rewriting resident memory,
// against 19 GiB/s for clear() (BenchmarkPattern).
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
	// array's elements in memory.
	a0, a1, a2, a3, a4, a5, a6, a7 := p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]
	for ; len(w) >= 8; w = w[8:] {
		a0 ^= a0 << 13
		a0 ^= a0 >> 7
		a0 ^= a0 << 17
		a1 ^= a1 << 13
		a1 ^= a1 >> 7
		a1 ^= a1 << 17
		a2 ^= a2 << 13
		a2 ^= a2 >> 7
		a2 ^= a2 << 17
		a3 ^= a3 << 13
		a3 ^= a3 >> 7
		a3 ^= a3 << 17
		a4 ^= a4 << 13
		a4 ^= a4 >> 7
		a4 ^= a4 << 17
		a5 ^= a5 << 13
		a5 ^= a5 >> 7
		a5 ^= a5 << 17
		a6 ^= a6 << 13
		a6 ^= a6 >> 7
		a6 ^= a6 << 17
		a7 ^= a7 << 13
		a7 ^= a7 >> 7
		a7 ^= a7 << 17
		w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7] = a0, a1, a2, a3, a4, a5, a6, a7
	}
	*p = pattern{a0, a1, a2, a3, a4, a5, a6, a7}
}
