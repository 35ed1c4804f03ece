package memory

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"slices"
	"testing"
	"time"
	"unsafe"
)

func TestPatternIsNotCompressible(t *testing.T) {
	b := make([]byte, 1*mib)
	p := newPattern(1)
	p.fill(b)
	for i := 0; i < len(b); i += 8 {
		if binary.LittleEndian.Uint64(b[i:]) == 0 {
			t.Fatalf("word at %d is zero", i)
		}
	}
	var out bytes.Buffer
	w, _ := flate.NewWriter(&out, flate.BestCompression)
	_, _ = w.Write(b)
	_ = w.Close()
	if ratio := float64(out.Len()) / float64(len(b)); ratio < 0.99 {
		t.Fatalf("deflate shrinks the pattern to %.0f%%", ratio*100)
	}
}

// Eight sequences that started alike, or a lane that repeated another, would show up here as
// equal words; so would two runs with the same pattern.
func TestPatternWordsAreDistinct(t *testing.T) {
	b := make([]byte, 8*mib)
	for i, seed := range []uint64{1, 2} {
		p := newPattern(seed)
		p.fill(b[i*len(b)/2 : (i+1)*len(b)/2])
	}
	words := slices.Clone(unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/8))
	slices.Sort(words)
	for i := 1; i < len(words); i++ {
		if words[i] == words[i-1] {
			t.Fatalf("word %#x occurs twice in 8MiB of two runs' patterns", words[i])
		}
	}
}

// fill writes in chunks and ramp steps; the pattern must carry on where it stopped, not restart.
func TestPatternInPiecesIsThePatternOfTheWhole(t *testing.T) {
	whole, pieces := make([]byte, 1*mib), make([]byte, 1*mib)
	p := newPattern(7)
	p.fill(whole)
	q := newPattern(7)
	for off := 0; off < len(pieces); off += pageSize {
		q.fill(pieces[off : off+pageSize])
	}
	if !bytes.Equal(whole, pieces) {
		t.Fatal("filling page by page wrote other data than filling at once")
	}
	if p != q {
		t.Fatal("the state after filling page by page differs from the state after filling at once")
	}
}

// BenchmarkPattern reports how fast the pattern is written over memory that is already
// resident, next to clear() (what the memory takes) and a single xorshift sequence:
//
//	go test -run '^$' -bench Pattern ./pkg/fault/memory
func BenchmarkPattern(b *testing.B) {
	buf := make([]byte, 256*mib)
	clear(buf) // resident before the clock starts
	for _, bc := range []struct {
		name string
		fill func([]byte)
	}{
		{"eight", func(m []byte) { p := newPattern(1); p.fill(m) }},
		{"one", func(m []byte) { oneSequence(m, 1) }},
		{"clear", func(m []byte) { clear(m) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var el time.Duration
			for range b.N {
				start := time.Now()
				bc.fill(buf)
				el += time.Since(start)
			}
			b.ReportMetric(float64(b.N)*float64(len(buf))/(1<<30)/el.Seconds(), "GiB/s")
		})
	}
}

// oneSequence writes one xorshift64 sequence: each word waits for the one before.
func oneSequence(b []byte, x uint64) {
	for i := 0; i+8 <= len(b); i += 8 {
		x = xorshift(x)
		binary.LittleEndian.PutUint64(b[i:], x)
	}
}
