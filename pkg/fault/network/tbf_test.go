package network

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

// standardClock is /proc/net/psched on every kernel since 2.6.31: 64 ns ticks.
var standardClock = clock{factor: 1, tickInUSec: 15.625}

func TestBandwidthParams(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    fault.Params
		want tbfConfig
		str  string
	}{
		{"defaults, floor burst", fault.Params{"bandwidth": "1mbit"},
			tbfConfig{Rate: 125_000, Burst: 16 << 10, Limit: 16<<10 + 6_250}, "rate 1Mbit burst 16KiB limit 22634B"},
		{"defaults, 10ms burst", fault.Params{"bandwidth": "1gbit"},
			tbfConfig{Rate: 125_000_000, Burst: 1_250_000, Limit: 1_250_000 + 6_250_000}, "rate 1Gbit burst 1250000B limit 7500000B"},
		{"lowest rate: 4s bucket", fault.Params{"bandwidth": "8kbit"},
			tbfConfig{Rate: 1_000, Burst: 4_000, Limit: 4_050}, "rate 8Kbit burst 4000B limit 4050B"},
		{"explicit", fault.Params{"bandwidth": "10mbit", "bandwidth_burst": "32KiB", "bandwidth_limit": "64KiB"},
			tbfConfig{Rate: 1_250_000, Burst: 32 << 10, Limit: 64 << 10}, "rate 10Mbit burst 32KiB limit 64KiB"},
		{"burst as a number, limit from it", fault.Params{"bandwidth": "10mbit", "bandwidth_burst": 4000},
			tbfConfig{Rate: 1_250_000, Burst: 4_000, Limit: 4_000 + 62_500}, "rate 10Mbit burst 4000B limit 66500B"},
		{"highest rate", fault.Params{"bandwidth": "4294967295bps"},
			tbfConfig{Rate: 4_294_967_295, Burst: 42_949_672, Limit: 42_949_672 + 214_748_364}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := mustNew(t, tc.p, fault.Env{})
			if f.cfg.tbf != tc.want {
				t.Errorf("tbf = %+v, want %+v", f.cfg.tbf, tc.want)
			}
			if tc.str != "" && f.cfg.tbf.String() != tc.str {
				t.Errorf("String() = %q, want %q", f.cfg.tbf.String(), tc.str)
			}
			if f.cfg.netem != (netemConfig{Limit: defaultLimit}) {
				t.Errorf("netem = %+v: a bandwidth fault sets none of it", f.cfg.netem)
			}
		})
	}
}

func TestBandwidthDescribeAndPlace(t *testing.T) {
	for _, tc := range []struct {
		name     string
		p        fault.Params
		env      fault.Env
		root     string
		describe string
	}{
		{"alone", fault.Params{"bandwidth": "1mbit", "interfaces": []any{"cc-a"}, "netns": "/run/netns/x"}, fault.Env{},
			"tbf", "tbf rate 1Mbit burst 16KiB limit 22634B on cc-a in /run/netns/x"},
		{"ports", fault.Params{"bandwidth": "1mbit", "ports": []any{5201}}, fault.Env{},
			"prio", "tbf rate 1Mbit burst 16KiB limit 22634B on the default-route interfaces, only ports 5201"},
		{"cidrs", fault.Params{"bandwidth": "1mbit", "cidrs": []any{"10.0.0.0/8"}}, fault.Env{}, "prio", ""},
		// The agent's own port is kept out, which takes filters, hence prio.
		{"agent port", fault.Params{"bandwidth": "1mbit"}, fault.Env{ListenPort: 8000},
			"prio", "tbf rate 1Mbit burst 16KiB limit 22634B on the default-route interfaces, except ports 8000"},
		{"agent port let in", fault.Params{"bandwidth": "1mbit", "exclude_ports": []any{}}, fault.Env{ListenPort: 8000}, "tbf", ""},
		{"netem", fault.Params{"delay": "1ms", "exclude_ports": []any{}}, fault.Env{}, "prio", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := mustNew(t, tc.p, tc.env)
			if got := f.cfg.rootKind(); got != tc.root {
				t.Errorf("root kind %s, want %s", got, tc.root)
			}
			if tc.describe != "" && f.Describe() != tc.describe {
				t.Errorf("Describe\n got %s\nwant %s", f.Describe(), tc.describe)
			}
		})
	}
}

func TestBandwidthErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    fault.Params
		want []string // "key: prefix"
	}{
		{"with netem options", fault.Params{"bandwidth": "1mbit", "delay": "10ms", "loss": "1%", "limit": 100},
			[]string{"bandwidth: cannot be combined with delay, loss, limit: bandwidth is a tbf qdisc"}},
		{"with netem's rate", fault.Params{"bandwidth": "1mbit", "rate": "1mbit"}, []string{"bandwidth: cannot be combined with rate"}},
		{"not a rate", fault.Params{"bandwidth": "10"}, []string{`bandwidth: "10" is not a rate`}},
		{"not a string", fault.Params{"bandwidth": 10}, []string{"bandwidth: expected a string"}},
		{"too slow", fault.Params{"bandwidth": "1kbit"}, []string{`bandwidth: "1kbit" is below 8kbit`}},
		{"too fast", fault.Params{"bandwidth": "40gbit"}, []string{`bandwidth: "40gbit" is above 34.3Gbit`}},
		{"zero", fault.Params{"bandwidth": "0mbit"}, []string{`bandwidth: "0mbit" must be above zero`}},
		{"burst and limit without bandwidth", fault.Params{"delay": "1ms", "bandwidth_burst": "32KiB", "bandwidth_limit": "64KiB"},
			[]string{"bandwidth_burst: needs a bandwidth", "bandwidth_limit: needs a bandwidth"}},
		{"small", fault.Params{"bandwidth": "1mbit", "bandwidth_burst": "1KiB", "bandwidth_limit": 100},
			[]string{"bandwidth_burst: 1KiB is below 1514 bytes", "bandwidth_limit: 100B is below 1514 bytes"}},
		{"burst above 4s", fault.Params{"bandwidth": "1mbit", "bandwidth_burst": "1MiB"},
			[]string{"bandwidth_burst: 1MiB is more than 4s of 1Mbit: tbf's bucket holds at most 4s of its rate (500000B here)"}},
		{"tc's units", fault.Params{"bandwidth": "1mbit", "bandwidth_burst": "32kbit", "bandwidth_limit": "32kb"},
			[]string{`bandwidth_burst: "32kbit" is not a size`, `bandwidth_limit: "32kb" is not a size`}},
		{"huge limit", fault.Params{"bandwidth": "1mbit", "bandwidth_limit": "8GiB"}, []string{"bandwidth_limit: 8GiB is above 4GiB"}},
		{"negative", fault.Params{"bandwidth": "1mbit", "bandwidth_burst": -5}, []string{`bandwidth_burst: "-5" is negative`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.p, fault.Env{})
			wantFieldErrors(t, err, tc.want)
		})
	}
}

func TestTbfOptions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tbf    tbfConfig
		clk    clock
		buffer uint32
	}{
		// 16384 bytes at 125000 B/s is 131.072ms, 2048000 ticks of 64ns: what tc sends for
		// `tbf rate 1mbit burst 16384`.
		{"1mbit", tbfConfig{Rate: 125_000, Burst: 16384, Limit: 22634}, standardClock, 2_048_000},
		// 2KiB at 10gbit is 1.6384µs: tc truncates it to 1µs (15 ticks, a 1250-byte bucket,
		// below one frame); rounded up from the exact time it is 26 ticks.
		{"small burst, high rate", tbfConfig{Rate: 1_250_000_000, Burst: 2048, Limit: 1 << 20}, standardClock, 26},
		// An old kernel's clock, one tick per µs.
		{"microsecond ticks", tbfConfig{Rate: 125_000, Burst: 16384, Limit: 22634}, clock{factor: 1, tickInUSec: 1}, 131_072},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := tc.tbf.options(tc.clk)
			if err != nil {
				t.Fatal(err)
			}
			p := o.Parms
			if p.Buffer != tc.buffer || p.Limit != tc.tbf.Limit || p.Rate.Rate != uint32(tc.tbf.Rate) || p.Rate.Linklayer != 1 {
				t.Errorf("parms = %+v, want buffer %d", *p, tc.buffer)
			}
			if o.Burst != nil || p.PeakRate.Rate != 0 || p.Mtu != 0 {
				t.Errorf("only rate, limit and buffer are sent: %+v burst %v", *p, o.Burst)
			}
			// The kernel's bucket (ticks × 64ns at the rate) holds at least the burst asked.
			ns := float64(p.Buffer) / tc.clk.ticksPerSec() * 1e9
			if got := ns * float64(tc.tbf.Rate) / 1e9; got < float64(tc.tbf.Burst)-1e-6 {
				t.Errorf("bucket of %.1f bytes, want at least %d", got, tc.tbf.Burst)
			}
		})
	}
	if _, err := (tbfConfig{Rate: 1000, Burst: 1 << 31}).options(standardClock); err == nil {
		t.Error("a bucket of 2^31 ticks × 1000 was accepted")
	}
}

func TestReadClock(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(dir, "net"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "net/psched"), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := readClock(dir); err == nil {
		t.Error("a missing psched was accepted: go-tc's fallback (1 tick per µs) is what this avoids")
	}
	for _, tc := range []struct {
		file        string
		ticksPerSec float64
	}{
		{"000003e8 00000040 000f4240 3b9aca00\n", 15_625_000},
		// A nanosecond clock resolution: iproute2 treats t2us as equal to us2t.
		{"000003e8 00000040 3b9aca00 3b9aca00\n", 1e9},
	} {
		write(tc.file)
		c, err := readClock(dir)
		if err != nil || c.ticksPerSec() != tc.ticksPerSec {
			t.Errorf("%q: %v ticks/s, %v; want %v", tc.file, c.ticksPerSec(), err, tc.ticksPerSec)
		}
	}
	for _, bad := range []string{"", "000003e8 00000040", "000003e8 00000000 000f4240 3b9aca00", "x y z w"} {
		write(bad)
		if c, err := readClock(dir); err == nil {
			t.Errorf("%q: accepted as %+v", bad, c)
		}
	}
	if c, err := readClock("/proc"); err != nil {
		t.Logf("this machine's clock: %v", err)
	} else if c.ticksPerSec() != standardClock.ticksPerSec() {
		t.Logf("this machine's scheduler clock is unusual: %v ticks/s", c.ticksPerSec())
	}
}

const sampleTbfUndo = `{"version":1,"run":"43","netns_inode":4026531840,` +
	`"qdisc":{"kind":"tbf","handle":"c4a0:"},"tbf":"rate 1Mbit burst 16KiB limit 22634B",` +
	`"interfaces":[{"name":"cc-a","index":3,"state":"applied","previous_root":{"kind":"noqueue","handle":"0:"}}]}`

// A bandwidth fault's undo round-trips, and an undo naming tbf at another handle is refused.
// The netem undos of before (sampleUndo) still decode: TestUndoFormat.
func TestUndoTbf(t *testing.T) {
	u, err := decodeUndo([]byte(sampleTbfUndo))
	if err != nil {
		t.Fatal(err)
	}
	if u.Qdisc != (qdiscRef{"tbf", rootHandle}) || u.Netem != "" || u.Tbf == "" {
		t.Errorf("decoded %+v", u)
	}
	b, _ := json.Marshal(u)
	if string(b) != sampleTbfUndo {
		t.Errorf("round trip\n got %s\nwant %s", b, sampleTbfUndo)
	}
	foreign := strings.Replace(sampleTbfUndo, `"handle":"c4a0:"},"tbf"`, `"handle":"1:"},"tbf"`, 1)
	if _, err := decodeUndo([]byte(foreign)); err == nil {
		t.Error("an undo naming tbf 1: was accepted")
	}
}

// A plan is injected only with the layout it names: Revert deletes that kind and no other.
func TestInjectPlanOtherLayout(t *testing.T) {
	for _, tc := range []struct {
		p    fault.Params
		plan string
	}{
		{fault.Params{"delay": "1ms"}, sampleTbfUndo},
		{fault.Params{"bandwidth": "1mbit"}, sampleUndo},
	} {
		f := mustNew(t, tc.p, faultEnv())
		got, err := f.Inject(t.Context(), []byte(tc.plan))
		if err == nil || !strings.Contains(err.Error(), "planned with other parameters") {
			t.Errorf("%v: Inject: %v", tc.p, err)
		}
		for _, s := range states(t, got) {
			if !strings.HasSuffix(s, "=untouched") {
				t.Errorf("%v: %s", tc.p, s)
			}
		}
	}
}
