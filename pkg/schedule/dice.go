package schedule

import (
	crand "crypto/rand"
	"encoding/binary"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"time"
)

// Dice makes the probability rolls and jitter draws of one experiment. It is safe for
// concurrent use. A nil *Dice works too and draws from an unseeded source.
type Dice struct {
	mu sync.Mutex // rand.Rand is not safe for concurrent use; one experiment's fires may overlap
	r  *rand.Rand
}

// NewDice returns the dice for the experiment called name. seed 0 means random (seeded from
// crypto/rand). Any other seed gives a PCG seeded from (seed, FNV-1a hash of name), so each
// experiment's sequence is reproducible on its own: adding, removing or reordering other
// experiments, or how often they roll, does not change it.
func NewDice(seed uint64, name string) *Dice {
	var s1, s2 uint64
	if seed == 0 {
		var b [16]byte
		// crypto/rand.Read never fails on Go 1.24+ (it crashes the program instead).
		_, _ = crand.Read(b[:])
		s1, s2 = binary.LittleEndian.Uint64(b[:8]), binary.LittleEndian.Uint64(b[8:])
	} else {
		h := fnv.New64a()
		_, _ = h.Write([]byte(name))
		s1, s2 = seed, h.Sum64()
	}
	return &Dice{r: rand.New(rand.NewPCG(s1, s2))}
}

// Roll returns true with probability p: never for p <= 0 (or NaN), always for p >= 1. The
// edges consume no randomness, so switching an experiment to p=1 and back does not shift its
// sequence.
func (d *Dice) Roll(p float64) bool {
	switch {
	case !(p > 0): // also NaN: a broken probability must never mean "fire"
		return false
	case p >= 1:
		return true
	}
	return d.float64() < p
}

// Duration returns a uniform random duration in [0, max), for jitter; 0 if max <= 0.
func (d *Dice) Duration(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	if d == nil {
		return rand.N(max)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return time.Duration(d.r.Int64N(int64(max)))
}

func (d *Dice) float64() float64 {
	if d == nil {
		return rand.Float64()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.r.Float64()
}
