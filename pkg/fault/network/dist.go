package network

import (
	"math"
	"sync"
)

// Delay distribution tables for netem.
//
// tc reads these from /usr/lib/tc/<name>.dist, files iproute2 generates at build time with
// small C programs (netem/normal.c, pareto.c, paretonormal.c). The agent must not depend on
// iproute2 being installed (a distroless image has no /usr/lib/tc), so the same tables are
// computed here, with the same arithmetic: the test compares them value for value with the
// installed files and with checksums of them.
//
// A table holds 4096 samples of the inverse distribution function, scaled by
// NETEM_DIST_SCALE; the kernel picks a random entry per packet and scales it by the jitter.
// "uniform" has no table: it is netem's default.

// distScale is NETEM_DIST_SCALE from include/uapi/linux/pkt_sched.h.
const distScale = 8192

var distributions = []string{"normal", "pareto", "paretonormal"}

// distTables computes each table on first use only: the inverse normal takes some 400,000
// evaluations of erf, not worth paying for a uniform jitter (it took 1.4s in an emulated VM).
var distTables = map[string]func() []int16{
	"normal":       sync.OnceValue(normalTable),
	"pareto":       sync.OnceValue(paretoTable),
	"paretonormal": sync.OnceValue(paretoNormalTable),
}

// distTable returns the table for name, or nil for uniform (or an unknown name). Tables are
// shared: callers must not modify them.
func distTable(name string) []int16 {
	if f, ok := distTables[name]; ok {
		return f()
	}
	return nil
}

// rint is C's rint in the default rounding mode: halves to even.
func rint(x float64) float64 { return math.RoundToEven(x) }

func clampInt16(v float64) int16 {
	return int16(max(math.MinInt16, min(math.MaxInt16, v)))
}

var inverseNormal = sync.OnceValue(computeInverseNormal)

// computeInverseNormal is normal.c's table: for a fine grid of x, the slot its CDF falls into gets x.
// The float loop (including its accumulated rounding) is kept as is, so the result matches.
func computeInverseNormal() []float64 {
	const size = 16384
	table := make([]float64, size+1)
	for x := -10.0; x < 10.05; x += .00005 {
		i := int(rint(size * (.5 + .5*math.Erf(x/math.Sqrt2))))
		table[i] = x
	}
	return table
}

func normalTable() []int16 {
	inv := inverseNormal()
	out := make([]int16, 0, 4096)
	for i := 0; i < 16384; i += 4 {
		out = append(out, clampInt16(rint(inv[i]*distScale)))
	}
	return out
}

// pareto is pareto.c's value for i in (0, 65536]: shape a=3, shifted to mean zero.
func pareto(i int) float64 {
	const a = 3.0
	d := 1.0 / math.Pow(float64(i)/65536, 1.0/a)
	d -= 1.5
	d *= (4.0 / 3.0) * distScale
	return min(d, 32767)
}

func paretoTable() []int16 {
	out := make([]int16, 0, 4096)
	for i := 65536; i > 0; i -= 16 {
		out = append(out, int16(rint(pareto(i))))
	}
	return out
}

// paretoNormalTable mixes one part normal with three parts pareto, in integers, as
// paretonormal.c does (C's integer division truncates toward zero, as Go's does).
func paretoNormalTable() []int16 {
	inv := inverseNormal()
	out := make([]int16, 0, 4096)
	for i := 0; i < 16384; i += 4 {
		normal := int(rint(inv[i] * distScale))
		par := int(rint(pareto(65536 - 4*i)))
		out = append(out, clampInt16(float64((normal+3*par)/4)))
	}
	return out
}
