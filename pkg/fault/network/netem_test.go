package network

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

func TestNetemOptions(t *testing.T) {
	n := mustNew(t, fault.Params{
		"delay": "100ms", "jitter": "10ms", "correlation": "25%", "distribution": "pareto",
		"loss": "30%", "loss_correlation": "50%", "duplicate": "100%", "corrupt": "0%",
		"reorder": "25%", "rate": "10mbit",
	}, fault.Env{}).cfg.netem
	o := n.options()
	if o.Qopt.Limit != 1000 {
		t.Errorf("limit = %d: must never be 0", o.Qopt.Limit)
	}
	if o.Qopt.Latency != 0 || o.Qopt.Jitter != 0 {
		t.Errorf("tick fields must stay 0, got %d/%d", o.Qopt.Latency, o.Qopt.Jitter)
	}
	if o.Latency64 == nil || *o.Latency64 != int64(100*time.Millisecond) || o.Jitter64 == nil || *o.Jitter64 != int64(10*time.Millisecond) {
		t.Errorf("latency64/jitter64 = %v/%v", o.Latency64, o.Jitter64)
	}
	if got, want := o.Qopt.Loss, uint32(math.Round(0.3*math.MaxUint32)); got != want {
		t.Errorf("loss = %d, want %d", got, want)
	}
	if o.Qopt.Duplicate != math.MaxUint32 {
		t.Errorf("100%% duplicate = %d, want 2^32-1", o.Qopt.Duplicate)
	}
	if o.Corrupt != nil {
		t.Error("corrupt 0% must not be sent")
	}
	if o.Corr == nil || o.Corr.Delay != 1073741824 || o.Corr.Loss != 2147483648 {
		t.Errorf("corr = %+v", o.Corr)
	}
	if o.Reorder == nil || o.Qopt.Gap != 1 {
		t.Errorf("reorder %+v gap %d: gap defaults to 1 as in tc", o.Reorder, o.Qopt.Gap)
	}
	if o.Rate == nil || o.Rate.Rate != 1_250_000 || o.Rate64 != nil {
		t.Errorf("rate = %+v / %v", o.Rate, o.Rate64)
	}
	if o.DelayDist == nil || len(*o.DelayDist) != 4096 {
		t.Error("pareto table missing")
	}

	fast := mustNew(t, fault.Params{"rate": "40gbit"}, fault.Env{}).cfg.netem.options()
	if fast.Rate == nil || fast.Rate.Rate != math.MaxUint32 || fast.Rate64 == nil || *fast.Rate64 != 5_000_000_000 {
		t.Errorf("40gbit: rate %+v rate64 %v", fast.Rate, fast.Rate64)
	}
	if u := mustNew(t, fault.Params{"delay": "5ms", "jitter": "1ms", "distribution": "uniform"}, fault.Env{}).cfg.netem.options(); u.DelayDist != nil {
		t.Error("uniform must send no table")
	}
}

// The tables must be the ones iproute2 ships; the checksums are of iproute2 6.1's
// normal.dist, pareto.dist and paretonormal.dist read as int16 values.
func TestDistTables(t *testing.T) {
	for _, name := range distributions {
		tab := distTable(name)
		if len(tab) != 4096 {
			t.Fatalf("%s: %d entries", name, len(tab))
		}
		sum := sha256.New()
		binary.Write(sum, binary.LittleEndian, tab)
		got := hex.EncodeToString(sum.Sum(nil))
		if w := goldenDistSums[name]; got != w {
			t.Errorf("%s: sha256 %s, want %s", name, got, w)
		}
		// Against the installed file, when iproute2 is there.
		for _, dir := range []string{"/usr/lib/x86_64-linux-gnu/tc", "/usr/lib/tc", "/usr/lib64/tc"} {
			b, err := os.ReadFile(dir + "/" + name + ".dist")
			if err != nil {
				continue
			}
			file := parseDist(t, string(b))
			for i := range file {
				if i >= len(tab) || file[i] != tab[i] {
					t.Fatalf("%s: entry %d differs from %s/%s.dist", name, i, dir, name)
				}
			}
			if len(file) != len(tab) {
				t.Errorf("%s: %d entries, file has %d", name, len(tab), len(file))
			}
			t.Logf("%s matches %s/%s.dist", name, dir, name)
			break
		}
	}
	if distTable("uniform") != nil {
		t.Error("uniform has no table")
	}
}

var goldenDistSums = map[string]string{
	"normal":       "ea496767068d0be9eb46cb69ee90470105525b9090a6d479dadf04db0f3d44a5",
	"pareto":       "bb133e76721f7df4fd75dd647aad368fa8e9eaf9b9797fc8d208dde5f9ffbd2a",
	"paretonormal": "ca372e5f4871aa11f38e71c82bd18e074e068f0704291e8a859ebd1aaee2f9f1",
}

func parseDist(t *testing.T, s string) []int16 {
	var out []int16
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, f := range strings.Fields(line) {
			n, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("dist file: %v", err)
			}
			out = append(out, int16(n))
		}
	}
	return out
}
