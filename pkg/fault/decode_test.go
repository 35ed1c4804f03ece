package fault

import (
	"strings"
	"testing"
	"time"
)

type sample struct {
	Name     string        `param:"name"`
	Workers  int           `param:"workers"`
	Ratio    float64       `param:"ratio"`
	On       bool          `param:"on"`
	Delay    time.Duration `param:"delay"`
	Size     Size          `param:"size"`
	Loss     Percent       `param:"loss"`
	Ports    []int         `param:"ports"`
	Ifaces   []string      `param:"interfaces"`
	Optional *Percent      `param:"percent"`
	Count    uint16        `param:"count"`
	ignored  int
}

func TestDecode(t *testing.T) {
	var s sample
	err := Decode(Params{
		"name": "x", "workers": 3, "ratio": 0.5, "on": "true", "delay": "200ms", "size": "1MiB",
		"loss": "1.5%", "ports": []any{8080, 9090.0}, "interfaces": "eth0", "percent": 40, "count": "7",
	}, &s)
	if err != nil {
		t.Fatal(err)
	}
	want := sample{Name: "x", Workers: 3, Ratio: 0.5, On: true, Delay: 200 * time.Millisecond, Size: 1 << 20,
		Loss: 1.5, Ports: []int{8080, 9090}, Ifaces: []string{"eth0"}, Count: 7}
	if s.Optional == nil || *s.Optional != 40 {
		t.Fatalf("Optional = %v, want 40", s.Optional)
	}
	s.Optional = nil
	if s.Name != want.Name || s.Workers != want.Workers || s.Ratio != want.Ratio || !s.On || s.Delay != want.Delay ||
		s.Size != want.Size || s.Loss != want.Loss || len(s.Ports) != 2 || s.Ports[1] != 9090 ||
		len(s.Ifaces) != 1 || s.Count != 7 {
		t.Fatalf("decoded %+v, want %+v", s, want)
	}
	_ = s.ignored
}

func TestDecodeErrors(t *testing.T) {
	var s sample
	err := Decode(Params{
		"workers": 2.5, "delay": 12, "loss": "150%", "bogus": 1, "ports": []any{"a"}, "count": 70000, "on": "maybe",
	}, &s)
	got := FieldErrors(err)
	want := map[string]string{
		"bogus":    "unknown key (known: count, delay, interfaces, loss, name, on, percent, ports, ratio, size, workers)",
		"count":    "70000 is out of range",
		"delay":    `expected a duration like 45s, got 12`,
		"loss":     `"150%" is above 100%`,
		"on":       `expected true or false, got "maybe"`,
		"ports[0]": `expected a whole number, got "a"`,
		"workers":  "expected a whole number, got 2.5",
	}
	if len(got) != len(want) {
		t.Fatalf("got %d errors, want %d: %v", len(got), len(want), err)
	}
	for _, fe := range got {
		if want[fe.Key] != fe.Msg {
			t.Errorf("%s: got %q, want %q", fe.Key, fe.Msg, want[fe.Key])
		}
	}
	if !strings.Contains(err.Error(), "loss: \"150%\" is above 100%") {
		t.Errorf("joined error lacks the key path: %v", err)
	}
}

func TestDecodeIntRange(t *testing.T) {
	var s struct {
		N int64 `param:"n"`
	}
	for _, v := range []any{uint64(1 << 63), "9223372036854775808", 1e19} {
		if err := Decode(Params{"n": v}, &s); err == nil {
			t.Errorf("Decode(%v) = %d, want an out-of-range error", v, s.N)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{"200ms", "1MiB", "30%", "", "-1", "1e400", "NaN"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		var s sample
		_ = Decode(Params{"delay": v, "size": v, "loss": v, "workers": v, "ports": v, "percent": v}, &s)
		// A key path is split along the data; any name ends, on data or off it.
		_ = resolve(v, map[string]any{v: []any{1}, "a": map[string]any{v: 1}})
		_ = resolve("a."+v+"[0]", map[string]any{"a": map[string]any{v: []any{}}})
	})
}
