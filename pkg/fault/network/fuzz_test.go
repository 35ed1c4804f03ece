package network

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

// FuzzNew feeds New the string parameters users get wrong most: durations, percentages,
// rates, distributions, CIDRs. New must never panic; what it accepts must make a sane netem
// configuration (limit ≥ 1, probabilities in range, a finite rate) and an undo that encodes.
func FuzzNew(f *testing.F) {
	for _, s := range [][6]string{
		{"100ms", "10ms", "25%", "10mbit", "normal", "10.0.0.0/8"},
		{"1h", "59m", "100", "1tbit", "paretonormal", "fd00::1"},
		{"-1ms", "0s", "-0%", "0bit", "uniform", "::/0"},
		{"1e3ms", "1.5µs", "1e2%", "1.5gibps", "PARETO", "1.2.3.4/33"},
		{"", " ", "%", "mbit", "", "::ffff:10.0.0.0/104"},
		{"9223372036854775807ns", "NaN", "inf%", "1e309kbit", "gauss", "1.2.3.4%eth0"},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4], s[5], 1000)
	}
	f.Fuzz(func(t *testing.T, delay, jitter, pct, rate, dist, cidr string, limit int) {
		p := fault.Params{
			"delay": delay, "jitter": jitter, "correlation": pct, "loss": pct, "rate": rate,
			"distribution": dist, "cidrs": []any{cidr}, "limit": limit, "duplicate": pct,
		}
		ff, err := New(p, fault.Env{ListenPort: 8000})
		if err != nil {
			if len(fault.FieldErrors(err)) == 0 || err.Error() == "" {
				t.Fatalf("error without detail: %#v", err)
			}
			return
		}
		n := ff.(*Fault).cfg.netem
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
		if d := ff.(*Fault).Describe(); !strings.HasPrefix(d, "netem ") {
			t.Fatalf("Describe: %q", d)
		}
		for _, flt := range filters(ff.(*Fault).cfg.scope) {
			if _, err := flt.object(1); err != nil {
				t.Fatalf("filter: %v", err)
			}
		}
		u := undo{Version: undoVersion, Qdisc: qdiscRef{"prio", rootHandle}, Netem: n.String()}
		if _, err := json.Marshal(u); err != nil {
			t.Fatal(err)
		}
	})
}
