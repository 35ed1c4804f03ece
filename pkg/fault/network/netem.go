package network

import (
	"math"
	"strconv"
	"strings"

	tc "github.com/florianl/go-tc"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

// probability converts a percentage to netem's scale, where 2^32-1 is 100% (as tc does).
func probability(p fault.Percent) uint32 {
	return uint32(math.Round(p.Fraction() * math.MaxUint32))
}

// options returns the netem qdisc's options.
//
// Delay and jitter go in the 64-bit nanosecond attributes (kernel 4.15+); the 32-bit
// Qopt fields are in scheduler ticks whose length go-tc guesses when /proc/net/psched is
// unreadable, so they stay 0. Limit is always set: go-tc would send 0, and netem with a
// limit of 0 drops every packet.
func (n netemConfig) options() *tc.Netem {
	o := &tc.Netem{Qopt: tc.NetemQopt{
		Limit:     n.Limit,
		Loss:      probability(n.Loss),
		Duplicate: probability(n.Duplicate),
		Gap:       n.Gap,
	}}
	if n.Delay > 0 {
		d := int64(n.Delay)
		o.Latency64 = &d
	}
	if n.Jitter > 0 {
		j := int64(n.Jitter)
		o.Jitter64 = &j
	}
	if n.Correlation > 0 || n.LossCorr > 0 {
		o.Corr = &tc.NetemCorr{Delay: probability(n.Correlation), Loss: probability(n.LossCorr)}
	}
	if t := distTable(n.Distribution); t != nil {
		o.DelayDist = &t
	}
	if n.Reorder > 0 {
		o.Reorder = &tc.NetemReorder{Probability: probability(n.Reorder)}
	}
	if n.Corrupt > 0 {
		o.Corrupt = &tc.NetemCorrupt{Probability: probability(n.Corrupt)}
	}
	if n.Rate > 0 {
		// The 32-bit field holds bytes per second; faster rates go in the 64-bit attribute
		// with the old field saturated, as tc does.
		if n.Rate >= 1<<32 {
			r := n.Rate
			o.Rate64 = &r
			o.Rate = &tc.NetemRate{Rate: math.MaxUint32}
		} else {
			o.Rate = &tc.NetemRate{Rate: uint32(n.Rate)}
		}
	}
	return o
}

// String says what the netem qdisc does, in tc's words ("delay 100ms 10ms 25% loss 30%").
func (n netemConfig) String() string {
	var b []string
	add := func(s ...string) { b = append(b, s...) }
	if n.Delay > 0 {
		add("delay", n.Delay.String())
		if n.Jitter > 0 {
			add(n.Jitter.String())
			if n.Correlation > 0 {
				add(n.Correlation.String())
			}
		}
		if n.Distribution != "" {
			add("distribution", n.Distribution)
		}
	}
	if n.Loss > 0 {
		add("loss", n.Loss.String())
		if n.LossCorr > 0 {
			add(n.LossCorr.String())
		}
	}
	if n.Duplicate > 0 {
		add("duplicate", n.Duplicate.String())
	}
	if n.Corrupt > 0 {
		add("corrupt", n.Corrupt.String())
	}
	if n.Reorder > 0 {
		add("reorder", n.Reorder.String(), "gap", strconv.FormatUint(uint64(n.Gap), 10))
	}
	if n.Rate > 0 {
		add("rate", formatRate(n.Rate))
	}
	add("limit", strconv.FormatUint(uint64(n.Limit), 10))
	return strings.Join(b, " ")
}
