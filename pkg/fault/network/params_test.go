package network

import (
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

func mustNew(t testing.TB, p fault.Params, env fault.Env) *Fault {
	t.Helper()
	f, err := New(p, env)
	if err != nil {
		t.Fatalf("New(%v): %v", p, err)
	}
	return f.(*Fault)
}

func TestNewDefaults(t *testing.T) {
	f := mustNew(t, fault.Params{"delay": "200ms"}, fault.Env{ListenPort: 8000})
	want := config{
		netem: netemConfig{Delay: 200 * time.Millisecond, Limit: 1000},
		scope: scope{Exclude: []uint16{8000}},
	}
	if !reflect.DeepEqual(f.cfg, want) {
		t.Errorf("config = %+v, want %+v", f.cfg, want)
	}
	if got := mustNew(t, fault.Params{"delay": "1ms"}, fault.Env{}).cfg.scope.Exclude; got != nil {
		t.Errorf("no listen port: exclude = %v, want none", got)
	}
	if got := mustNew(t, fault.Params{"delay": "1ms", "exclude_ports": []any{}}, fault.Env{ListenPort: 8000}).cfg.scope.Exclude; len(got) != 0 {
		t.Errorf("exclude_ports: [] must drop the default, got %v", got)
	}
}

func TestNewAll(t *testing.T) {
	f := mustNew(t, fault.Params{
		"delay": "100ms", "jitter": "10ms", "correlation": "25%", "distribution": "Normal",
		"loss": "1.5%", "loss_correlation": 10, "duplicate": "1%", "corrupt": "0.1%",
		"reorder": "25%", "gap": 5, "rate": "10mbit", "limit": 5000,
		"interfaces": []any{"eth0", "eth1"}, "netns": "/proc/42/ns/net/",
		"ports": []any{8080, 8443, 8080}, "cidrs": []any{"10.1.2.3/8", "192.0.2.7", "fd00::/8"},
		"exclude_ports": []any{22},
	}, fault.Env{ListenPort: 8000})
	n := f.cfg.netem
	if n.Delay != 100*time.Millisecond || n.Jitter != 10*time.Millisecond || n.Correlation != 25 ||
		n.Distribution != "normal" || n.Loss != 1.5 || n.LossCorr != 10 || n.Duplicate != 1 ||
		n.Corrupt != 0.1 || n.Reorder != 25 || n.Gap != 5 || n.Rate != 1_250_000 || n.Limit != 5000 {
		t.Errorf("netem = %+v", n)
	}
	if f.cfg.netns != "/proc/42/ns/net" || !slices.Equal(f.cfg.interfaces, []string{"eth0", "eth1"}) {
		t.Errorf("netns %q interfaces %v", f.cfg.netns, f.cfg.interfaces)
	}
	wantCIDRs := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("fd00::/8")}
	if s := f.cfg.scope; !slices.Equal(s.Ports, []uint16{8080, 8443}) || !slices.Equal(s.Exclude, []uint16{22}) || !slices.Equal(s.CIDRs, wantCIDRs) {
		t.Errorf("scope = %+v", s)
	}
	want := "netem delay 100ms 10ms 25% distribution normal loss 1.5% 10% duplicate 1% corrupt 0.1% " +
		"reorder 25% gap 5 rate 10Mbit limit 5000 on eth0, eth1 in /proc/42/ns/net, " +
		"only ports 8080, 8443 and to 10.0.0.0/8, 192.0.2.7/32, fd00::/8, except ports 22"
	if got := f.Describe(); got != want {
		t.Errorf("Describe\n got %s\nwant %s", got, want)
	}
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    fault.Params
		env  fault.Env
		want []string // "key: substring"
	}{
		{"nothing to do", fault.Params{"interfaces": []any{"lo"}}, fault.Env{}, []string{": a network fault needs at least one of delay"}},
		{"unknown key", fault.Params{"delay": "1ms", "dealy": "1ms"}, fault.Env{}, []string{"dealy: unknown key"}},
		{"bad units", fault.Params{"delay": "200", "loss": "thirty", "rate": "10", "jitter": 5}, fault.Env{}, []string{
			"delay: \"200\" is not a duration", "jitter: expected a duration", "loss: \"thirty\" is not a percentage", "rate: \"10\" is not a rate"}},
		{"ranges", fault.Params{"delay": "-1ms", "loss": "101%", "limit": 0, "gap": 0}, fault.Env{}, []string{
			"delay: -1ms is negative", "loss: \"101%\" is above 100%", "limit: 0 is not between 1", "gap: 0 is not between"}},
		{"huge delay", fault.Params{"delay": "2h"}, fault.Env{}, []string{"delay: 2h0m0s is above the limit"}},
		{"dependencies", fault.Params{"jitter": "1ms", "loss_correlation": "5%", "reorder": "5%", "rate": "1mbit"}, fault.Env{}, []string{
			"jitter: needs a delay", "loss_correlation: needs a loss", "reorder: needs a delay"}},
		{"correlation without jitter", fault.Params{"delay": "1ms", "correlation": "5%"}, fault.Env{}, []string{"correlation: is the correlation of the jitter"}},
		{"distribution", fault.Params{"delay": "1ms", "distribution": "normal"}, fault.Env{}, []string{"distribution: shapes the jitter"}},
		{"bad distribution", fault.Params{"delay": "1ms", "jitter": "1ms", "distribution": "gauss"}, fault.Env{}, []string{"distribution: \"gauss\" is not one of uniform, normal"}},
		{"gap without reorder", fault.Params{"delay": "1ms", "gap": 3}, fault.Env{}, []string{"gap: needs a reorder"}},
		{"interfaces", fault.Params{"delay": "1ms", "interfaces": []any{"eth0", "eth0", "a/b", "averyveryverylongname", ""}}, fault.Env{}, []string{
			"interfaces[1]: \"eth0\" is listed twice", "interfaces[2]: \"a/b\" is not a valid", "interfaces[3]: \"averyveryverylongname\" is longer", "interfaces[4]: is empty"}},
		{"netns relative", fault.Params{"delay": "1ms", "netns": "run/netns/x"}, fault.Env{}, []string{"netns: \"run/netns/x\" is not an absolute path"}},
		{"ports", fault.Params{"delay": "1ms", "ports": []any{0, 70000, "x"}}, fault.Env{}, []string{
			"ports[2]: expected a whole number", "ports[0]: 0 is not a port", "ports[1]: 70000 is not a port"}},
		{"interfaces not strings", fault.Params{"delay": "1ms", "interfaces": []any{"eth0", 5}}, fault.Env{}, []string{"interfaces[1]: expected a string, got 5"}},
		{"port range", fault.Params{"delay": "1ms", "ports": []any{0, 70000}}, fault.Env{}, []string{"ports[0]: 0 is not a port", "ports[1]: 70000 is not a port"}},
		{"own port", fault.Params{"delay": "1ms", "ports": []any{8000}}, fault.Env{ListenPort: 8000}, []string{"ports: 8000 is the agent's own port"}},
		{"excluded port", fault.Params{"delay": "1ms", "ports": []any{80}, "exclude_ports": []any{80}}, fault.Env{}, []string{"ports: 80 is also in exclude_ports"}},
		{"cidrs", fault.Params{"delay": "1ms", "cidrs": []any{"10.0.0.0/33", "host", "fe80::1%eth0"}}, fault.Env{}, []string{
			"cidrs[0]: \"10.0.0.0/33\" is not a CIDR", "cidrs[1]: \"host\" is not an address", "cidrs[2]: \"fe80::1%eth0\" is not an address"}},
		{"rate zero", fault.Params{"rate": "0mbit"}, fault.Env{}, []string{"rate: \"0mbit\" must be above zero"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.p, tc.env)
			wantFieldErrors(t, err, tc.want)
		})
	}
}

// wantFieldErrors checks that err is a fault.Errors with a message starting with each of
// want ("key: message").
func wantFieldErrors(t *testing.T, err error, want []string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	var got []string
	for _, fe := range fault.FieldErrors(err) {
		got = append(got, fe.Key+": "+fe.Msg)
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g string) bool { return strings.HasPrefix(g, w) }) {
			t.Errorf("missing %q in\n%s", w, strings.Join(got, "\n"))
		}
	}
	var es fault.Errors
	if !errors.As(err, &es) {
		t.Errorf("error is %T, want fault.Errors", err)
	}
}

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64 // bytes per second
	}{
		{"10mbit", 1_250_000}, {"10Mbit", 1_250_000}, {"1.5gbit", 187_500_000}, {"512kbit", 64_000},
		{"512kibit", 65_536}, {"100kbps", 100_000}, {"1mibps", 1 << 20}, {"8bit", 1}, {"  2 mbit ", 250_000},
		{"40gbit", 5_000_000_000}, {"1tbit", 125_000_000_000},
	} {
		got, err := ParseRate(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "10", "mbit", "-1mbit", "0bit", "1bit", "1e400mbit", "NaNmbit", "infmbit", "0x10mbit", "10mbits", "10 m bit", "9999999pbit"} {
		if got, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) = %d, want an error", bad, got)
		}
	}
	for _, r := range []uint64{1_250_000, 64_000, 1, 125_000_000_000} {
		if back, err := ParseRate(formatRate(r)); err != nil || back != r {
			t.Errorf("formatRate(%d) = %q does not parse back: %d, %v", r, formatRate(r), back, err)
		}
	}
}

func TestRegistered(t *testing.T) {
	f, err := fault.New("network", fault.Params{"delay": "1ms"}, fault.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.(fault.Sweeper); !ok {
		t.Error("network fault is not a Sweeper")
	}
}

// A list item of the wrong type is told once, by the decoder, not again by the check of
// its (zero) value.
func TestNewOneMessagePerItem(t *testing.T) {
	_, err := New(fault.Params{"delay": "1ms", "ports": []any{"x"}, "interfaces": []any{5}, "cidrs": []any{true}}, fault.Env{})
	seen := map[string]string{}
	for _, fe := range fault.FieldErrors(err) {
		if m, dup := seen[fe.Key]; dup {
			t.Errorf("%s: two messages: %q and %q", fe.Key, m, fe.Msg)
		}
		seen[fe.Key] = fe.Msg
	}
	if len(seen) != 3 {
		t.Errorf("got %v, want one message for each of ports[0], interfaces[0], cidrs[0]", err)
	}
}
