package network

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	tc "github.com/florianl/go-tc"
	"github.com/florianl/go-tc/core"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

// Bandwidth faults: a token bucket filter (tbf), the shaper tc users know, in place of netem.
//
// tbf holds a bucket of burst bytes that refills at the rate; a packet leaves when the bucket
// holds its length, and waits in a byte fifo of limit bytes otherwise (dropped when that is
// full). The kernel keeps the bucket as a time (burst / rate), sent in the 64 ns ticks of the
// packet scheduler's clock, as tc computes it from /proc/net/psched.

const (
	// minBurst is one full-size Ethernet frame with its header, as tbf counts a packet: a
	// smaller bucket never holds such a packet, and tbf drops it.
	minBurst = 1514
	// minBandwidth (8kbit): below it, the largest bucket tbf keeps (maxBurstSeconds of the
	// rate) would hold barely two full-size frames.
	minBandwidth = 1000
	// maxBandwidth is the largest rate in tbf's 32-bit field; faster rates need an attribute
	// go-tc v0.4.8 does not send (TCA_TBF_RATE64).
	maxBandwidth = math.MaxUint32
	// maxBurstSeconds: the kernel caps the bucket at 2^32 ns (about 4.29s) of the rate and
	// silently shrinks a larger one.
	maxBurstSeconds = 4
	// defaultMinBurst is the smallest default bucket: a jumbo frame (9000 bytes) fits, and a
	// few standard ones.
	defaultMinBurst = 16 << 10
	// defaultBurstMillis and defaultLatencyMillis make the default bucket (10ms of the rate)
	// and queue (50ms of the rate on top of the bucket, as `tc ... tbf latency 50ms` computes).
	defaultBurstMillis   = 10
	defaultLatencyMillis = 50
	// linkLayerEthernet (TC_LINKLAYER_ETHERNET) makes the kernel compute transmission times
	// from the rate itself, ignoring the rate table go-tc also sends.
	linkLayerEthernet = 1
)

// tbfConfig is what goes into the tbf qdisc, validated. Rate 0 means no tbf.
type tbfConfig struct {
	Rate  uint64 // bytes per second
	Burst uint32 // bytes the bucket holds
	Limit uint32 // bytes queued before drops
}

// String says what the tbf qdisc does ("rate 1Mbit burst 16KiB limit 22634B").
func (t tbfConfig) String() string {
	return fmt.Sprintf("rate %s burst %s limit %s", formatRate(t.Rate), formatBytes(t.Burst), formatBytes(t.Limit))
}

// formatBytes writes n exactly: whole KiB or MiB with their unit, bytes otherwise.
func formatBytes(n uint32) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatUint(uint64(n>>20), 10) + "MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatUint(uint64(n>>10), 10) + "KiB"
	}
	return strconv.FormatUint(uint64(n), 10) + "B"
}

// netemKeys lists the netem parameters set in p, in the order the docs give them.
func (p params) netemKeys() []string {
	var out []string
	for _, k := range []struct {
		set  bool
		name string
	}{
		{p.Delay != nil, "delay"}, {p.Jitter != nil, "jitter"}, {p.Correlation != nil, "correlation"},
		{p.Distribution != nil, "distribution"}, {p.Loss != nil, "loss"},
		{p.LossCorrelation != nil, "loss_correlation"}, {p.Duplicate != nil, "duplicate"},
		{p.Corrupt != nil, "corrupt"}, {p.Reorder != nil, "reorder"}, {p.Gap != nil, "gap"},
		{p.Rate != nil, "rate"}, {p.Limit != nil, "limit"},
	} {
		if k.set {
			out = append(out, k.name)
		}
	}
	return out
}

// parseTbf validates bandwidth, bandwidth_burst and bandwidth_limit.
func parseTbf(in params, es *fault.Errors) tbfConfig {
	if in.Bandwidth == nil {
		if in.BandwidthBurst != nil {
			es.Add("bandwidth_burst", "needs a bandwidth")
		}
		if in.BandwidthLimit != nil {
			es.Add("bandwidth_limit", "needs a bandwidth")
		}
		return tbfConfig{}
	}
	if keys := in.netemKeys(); len(keys) > 0 {
		// netem can take a child qdisc, but a tbf under netem shapes after netem's own queue
		// (its limit counts packets, tbf's bytes), which is hard to reason about; netem's rate
		// does the same job in one qdisc.
		msg := fmt.Sprintf("cannot be combined with %s: bandwidth is a tbf qdisc and those are netem's, "+
			"which chaoscron does not chain; for a rate limit together with netem's options use rate (netem's own rate limit)",
			strings.Join(keys, ", "))
		if in.Limit != nil {
			msg += "; limit is netem's packet limit, tbf's queue is bandwidth_limit (bytes)"
		}
		es.Add("bandwidth", msg)
	}
	r, err := ParseRate(*in.Bandwidth)
	switch {
	case err != nil:
		es.Add("bandwidth", err.Error())
		return tbfConfig{}
	case r < minBandwidth:
		es.Add("bandwidth", fmt.Sprintf("%q is below 8kbit, the lowest rate whose bucket holds full-size frames", *in.Bandwidth))
		return tbfConfig{}
	case r > maxBandwidth:
		es.Add("bandwidth", fmt.Sprintf("%q is above 34.3Gbit (2^32-1 bytes per second), the highest rate chaoscron gives tbf", *in.Bandwidth))
		return tbfConfig{}
	}
	t := tbfConfig{Rate: r}
	maxBurst := min(r*maxBurstSeconds, math.MaxUint32)
	if in.BandwidthBurst != nil {
		switch b := *in.BandwidthBurst; {
		case b < minBurst:
			es.Add("bandwidth_burst", fmt.Sprintf("%s is below %d bytes, one full-size Ethernet frame: tbf would drop every such packet", b, minBurst))
		case uint64(b) > maxBurst:
			es.Add("bandwidth_burst", fmt.Sprintf("%s is more than %ds of %s: tbf's bucket holds at most %ds of its rate (%dB here)",
				b, maxBurstSeconds, formatRate(r), maxBurstSeconds, maxBurst))
		default:
			t.Burst = uint32(b)
		}
	} else {
		t.Burst = uint32(min(max(r*defaultBurstMillis/1000, defaultMinBurst), maxBurst))
	}
	if in.BandwidthLimit != nil {
		switch l := *in.BandwidthLimit; {
		case l < minBurst:
			es.Add("bandwidth_limit", fmt.Sprintf("%s is below %d bytes: not even one full-size frame could wait", l, minBurst))
		case l > math.MaxUint32:
			es.Add("bandwidth_limit", fmt.Sprintf("%s is above %s, the largest limit tbf takes", l, fault.Size(math.MaxUint32)))
		default:
			t.Limit = uint32(l)
		}
	} else if t.Burst > 0 {
		t.Limit = uint32(min(uint64(t.Burst)+r*defaultLatencyMillis/1000, math.MaxUint32))
	}
	return t
}

// clock is the packet scheduler's clock, read from /proc/net/psched as tc reads it.
type clock struct {
	factor     float64 // clock resolution relative to 1µs
	tickInUSec float64 // scheduler ticks per microsecond (15.625 on kernels since 2.6.31)
}

func (c clock) ticksPerSec() float64 { return c.tickInUSec * 1e6 }

// readClock reads <proc>/net/psched. It fails rather than guess: go-tc assumes one tick per
// microsecond when the file is unreadable, which makes tbf's bucket 15.6 times too small.
func readClock(proc string) (clock, error) {
	path := filepath.Join(proc, "net/psched")
	b, err := os.ReadFile(path)
	if err != nil {
		return clock{}, fmt.Errorf("read the scheduler clock: %w", err)
	}
	return parseClock(path, string(b))
}

func parseClock(path, s string) (clock, error) {
	f := strings.Fields(s)
	var v [3]uint64
	for i := range v {
		if i >= len(f) {
			return clock{}, fmt.Errorf("%s: %q: want at least 3 hex numbers", path, s)
		}
		n, err := strconv.ParseUint(f[i], 16, 32)
		if err != nil || n == 0 {
			return clock{}, fmt.Errorf("%s: %q: field %d is not a positive hex number", path, s, i+1)
		}
		v[i] = n
	}
	t2us, us2t, res := v[0], v[1], v[2]
	if res == 1e9 {
		// iproute2's compatibility hack (tc_core_init): with a nanosecond clock the kernel
		// advertises a multiplier of 1000 that really is 1.
		t2us = us2t
	}
	factor := float64(res) / 1e6
	return clock{factor: factor, tickInUSec: float64(t2us) / float64(us2t) * factor}, nil
}

// bufferTicks is the bucket as the kernel wants it: burst/rate seconds in scheduler ticks,
// rounded up so the kernel's bucket is never smaller than asked. tc truncates the time to
// whole microseconds first, which at high rates loses a noticeable share of a small burst.
func (t tbfConfig) bufferTicks(clk clock) (uint32, error) {
	x := float64(t.Burst) * clk.ticksPerSec() / float64(t.Rate)
	ticks := math.Ceil(x - 1e-6) // a float just above a whole number is that number
	if t.Rate == 0 || ticks < 1 || ticks > math.MaxUint32 {
		return 0, fmt.Errorf("tbf burst %dB at %s is %.0f scheduler ticks: out of range", t.Burst, formatRate(t.Rate), ticks)
	}
	return uint32(ticks), nil
}

// options returns the tbf qdisc's options for the scheduler clock clk.
func (t tbfConfig) options(clk clock) (*tc.Tbf, error) {
	buf, err := t.bufferTicks(clk)
	if err != nil {
		return nil, err
	}
	return &tc.Tbf{Parms: &tc.TbfQopt{
		Rate:   tc.RateSpec{Linklayer: linkLayerEthernet, Rate: uint32(t.Rate)},
		Limit:  t.Limit, // never 0: tbf without a limit has no queue and drops everything
		Buffer: buf,
	}}, nil
}

// goTCClock sets go-tc's clock once per process: go-tc refuses to build tbf's rate table
// without it, and the clock is package state there, not ours to set per call.
var goTCClock sync.Once

// attribute reads the scheduler clock under proc and returns the tbf qdisc to add.
func (t tbfConfig) attribute(proc string) (tc.Attribute, error) {
	clk, err := readClock(proc)
	if err != nil {
		return tc.Attribute{}, err
	}
	o, err := t.options(clk)
	if err != nil {
		return tc.Attribute{}, err
	}
	goTCClock.Do(func() { core.SetClockParameters(clk.factor, clk.tickInUSec) })
	return tc.Attribute{Kind: "tbf", Tbf: o}, nil
}
