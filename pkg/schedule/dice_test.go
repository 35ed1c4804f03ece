package schedule

import (
	"math"
	"slices"
	"sync"
	"testing"
	"time"
)

func rolls(d *Dice, n int) []bool {
	out := make([]bool, n)
	for i := range out {
		out[i] = d.Roll(0.5)
	}
	return out
}

func TestDiceReproducible(t *testing.T) {
	tests := []struct {
		name     string
		a, b     *Dice
		wantSame bool
	}{
		{"same seed and name", NewDice(42, "api-latency"), NewDice(42, "api-latency"), true},
		{"different names", NewDice(42, "api-latency"), NewDice(42, "disk-fill"), false},
		{"different seeds", NewDice(42, "api-latency"), NewDice(43, "api-latency"), false},
		{"seed 0 is random", NewDice(0, "api-latency"), NewDice(0, "api-latency"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// 128 fair rolls agree by chance with probability 2^-128.
			same := slices.Equal(rolls(tc.a, 128), rolls(tc.b, 128))
			if same != tc.wantSame {
				t.Fatalf("sequences equal = %v, want %v", same, tc.wantSame)
			}
		})
	}
}

// Another experiment's rolls must not shift this one's sequence.
func TestDiceIndependentOfOthers(t *testing.T) {
	alone := rolls(NewDice(7, "a"), 64)
	a, b := NewDice(7, "a"), NewDice(7, "b")
	var mixed []bool
	for range 64 {
		b.Roll(0.5)
		mixed = append(mixed, a.Roll(0.5))
		b.Duration(time.Second)
	}
	if !slices.Equal(alone, mixed) {
		t.Fatal("rolls of another experiment changed this one's sequence")
	}
}

func TestDiceRate(t *testing.T) {
	tests := []struct {
		name string
		p    float64
		tol  float64
	}{
		{"p=0.3", 0.3, 0.02},
		{"p=0.01", 0.01, 0.005},
		{"p=0.99", 0.99, 0.005},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A fixed seed keeps the test deterministic; the tolerance is still about five
			// standard deviations wide, so any sane seed passes.
			d := NewDice(20261101, tc.name)
			const n = 10000
			hits := 0
			for range n {
				if d.Roll(tc.p) {
					hits++
				}
			}
			if rate := float64(hits) / n; math.Abs(rate-tc.p) > tc.tol {
				t.Fatalf("rate %.4f, want %.2f±%.3f", rate, tc.p, tc.tol)
			}
		})
	}
}

func TestDiceEdges(t *testing.T) {
	d := NewDice(1, "edges")
	tests := []struct {
		name string
		p    float64
		want bool
	}{
		{"p=0 never", 0, false},
		{"negative never", -0.5, false},
		{"NaN never", math.NaN(), false},
		{"-Inf never", math.Inf(-1), false},
		{"p=1 always", 1, true},
		{"above 1 always", 1.5, true},
		{"+Inf always", math.Inf(1), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for range 10000 {
				if got := d.Roll(tc.p); got != tc.want {
					t.Fatalf("Roll(%v) = %v", tc.p, got)
				}
			}
		})
	}
}

func TestDiceDuration(t *testing.T) {
	tests := []struct {
		name string
		dice *Dice
		max  time.Duration
	}{
		{"seeded", NewDice(3, "jitter"), 20 * time.Second},
		{"random", NewDice(0, "jitter"), time.Millisecond},
		{"nil dice", nil, time.Hour},
		{"one nanosecond", NewDice(3, "tiny"), 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var lo, hi time.Duration = tc.max, 0
			for range 2000 {
				d := tc.dice.Duration(tc.max)
				if d < 0 || d >= tc.max {
					t.Fatalf("Duration(%s) = %s, outside [0, max)", tc.max, d)
				}
				lo, hi = min(lo, d), max(hi, d)
			}
			// Uniform over 2000 draws: the extremes land near both ends.
			if tc.max > 1 && (lo > tc.max/10 || hi < tc.max*9/10) {
				t.Fatalf("draws span [%s, %s] of [0, %s): not uniform", lo, hi, tc.max)
			}
		})
	}
	for _, m := range []time.Duration{0, -time.Second} {
		if got := NewDice(3, "zero").Duration(m); got != 0 {
			t.Errorf("Duration(%s) = %s, want 0", m, got)
		}
	}
}

func TestDiceNilRolls(t *testing.T) {
	var d *Dice
	if d.Roll(0) || !d.Roll(1) {
		t.Fatal("nil dice broke the edges")
	}
	hits := 0
	for range 1000 {
		if d.Roll(0.5) {
			hits++
		}
	}
	if hits < 400 || hits > 600 {
		t.Fatalf("nil dice: %d/1000 hits at p=0.5", hits)
	}
}

// Run with -race: concurrent fires of one experiment share its Dice.
func TestDiceConcurrent(t *testing.T) {
	d := NewDice(9, "shared")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				d.Roll(0.5)
				d.Duration(time.Second)
			}
		})
	}
	wg.Wait()
}
