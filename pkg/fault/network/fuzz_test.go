package network

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

// FuzzNew feeds New the string parameters users get wrong most: durations, percentages,
// rates, sizes, distributions, CIDRs. New must never panic; what it accepts must make a sane
// netem or tbf configuration (limit ≥ 1, probabilities in range, a finite rate, a bucket the
// kernel takes) and an undo that encodes. A bandwidth leaves netem's options out unless
// netemToo, so that both the tbf path and the refused combination are explored.
func FuzzNew(f *testing.F) {
	for _, s := range [][6]string{
		{"100ms", "10ms", "25%", "10mbit", "normal", "10.0.0.0/8"},
		{"1h", "59m", "100", "1tbit", "paretonormal", "fd00::1"},
		{"-1ms", "0s", "-0%", "0bit", "uniform", "::/0"},
		{"1e3ms", "1.5µs", "1e2%", "1.5gibps", "PARETO", "1.2.3.4/33"},
		{"", " ", "%", "mbit", "", "::ffff:10.0.0.0/104"},
		{"9223372036854775807ns", "NaN", "inf%", "1e309kbit", "gauss", "1.2.3.4%eth0"},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4], s[5], 1000, "", "", "", false)
	}
	for _, s := range [][3]string{
		{"1mbit", "", ""},
		{"10mbit", "32KiB", "64KiB"},
		{"8kbit", "1514", "1514B"},
		{"4294967295bps", "4GiB", "4294967295"},
		{"34.4gbit", "1.5MiB", "-1"},
		{"7999bit", "32kbit", "32kb"},
		{"1e-3mbit", "NaN", "inf"},
		{"1gibit", "0.5KiB", "1e30"},
	} {
		f.Add("", "", "", "", "", "10.0.0.0/8", 1000, s[0], s[1], s[2], false)
	}
	f.Add("100ms", "", "", "", "", "10.0.0.0/8", 1000, "1mbit", "32KiB", "", true)
	f.Fuzz(func(t *testing.T, delay, jitter, pct, rate, dist, cidr string, limit int, bw, burst, blimit string, netemToo bool) {
		p := fault.Params{"cidrs": []any{cidr}}
		if bw == "" || netemToo {
			for k, v := range map[string]any{
				"delay": delay, "jitter": jitter, "correlation": pct, "loss": pct, "rate": rate,
				"distribution": dist, "limit": limit, "duplicate": pct,
			} {
				p[k] = v
			}
		}
		for k, v := range map[string]string{"bandwidth": bw, "bandwidth_burst": burst, "bandwidth_limit": blimit} {
			if v != "" {
				p[k] = v
			}
		}
		ff, err := New(p, fault.Env{ListenPort: 8000})
		if err != nil {
			if len(fault.FieldErrors(err)) == 0 || err.Error() == "" {
				t.Fatalf("error without detail: %#v", err)
			}
			return
		}
		cfg := ff.(*Fault).cfg
		if d := ff.(*Fault).Describe(); !strings.HasPrefix(d, "netem ") && !strings.HasPrefix(d, "tbf ") {
			t.Fatalf("Describe: %q", d)
		}
		for _, flt := range filters(cfg.scope) {
			if _, err := flt.object(1); err != nil {
				t.Fatalf("filter: %v", err)
			}
		}
		u := undo{Version: undoVersion, Qdisc: qdiscRef{cfg.rootKind(), rootHandle}, Netem: cfg.netem.String(), Tbf: cfg.tbf.String()}
		if _, err := json.Marshal(u); err != nil {
			t.Fatal(err)
		}
		if bw != "" {
			checkTbf(t, cfg, netemToo)
			return
		}
		n := cfg.netem
		o := n.options()
		if o.Qopt.Limit < 1 || o.Qopt.Limit != uint32(limit) {
			t.Fatalf("limit %d from %d", o.Qopt.Limit, limit)
		}
		if n.Delay < 0 || n.Jitter < 0 || n.Delay > maxDelay || (n.Jitter > 0 && n.Delay == 0) {
			t.Fatalf("delay %s jitter %s", n.Delay, n.Jitter)
		}
		if n.Rate == 0 || n.Rate > maxRate {
			t.Fatalf("rate %d from %q", n.Rate, rate)
		}
		for _, v := range []fault.Percent{n.Loss, n.Correlation, n.Duplicate} {
			if v < 0 || v > 100 || math.IsNaN(float64(v)) {
				t.Fatalf("percentage %v from %q", v, pct)
			}
		}
		if n.Distribution != "" && len(distTable(n.Distribution)) != 4096 {
			t.Fatalf("distribution %q has no table", n.Distribution)
		}
	})
}

// checkTbf holds an accepted bandwidth fault to what the kernel takes.
func checkTbf(t *testing.T, cfg config, netemToo bool) {
	t.Helper()
	b := cfg.tbf
	if netemToo {
		t.Fatalf("bandwidth accepted with netem's options: %+v", cfg)
	}
	if b.Rate < minBandwidth || b.Rate > maxBandwidth || b.Burst < minBurst || b.Limit < minBurst {
		t.Fatalf("tbf %+v out of range", b)
	}
	if float64(b.Burst)/float64(b.Rate) > maxBurstSeconds {
		t.Fatalf("tbf %+v: bucket above %ds", b, maxBurstSeconds)
	}
	o, err := b.options(standardClock)
	if err != nil {
		t.Fatalf("tbf %+v: %v", b, err)
	}
	// The kernel caps the bucket at 2^32 ns and drops all with a limit of 0.
	if ns := float64(o.Parms.Buffer) * 64; ns > math.MaxUint32 || o.Parms.Buffer == 0 || o.Parms.Limit == 0 {
		t.Fatalf("tbf %+v: parms %+v", b, *o.Parms)
	}
	if cfg.rootKind() != "prio" { // the agent's port is kept out: the fault sits on a band
		t.Fatalf("root %s with exclude_ports %v", cfg.rootKind(), cfg.scope.Exclude)
	}
}
