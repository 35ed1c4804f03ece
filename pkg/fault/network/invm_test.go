package network

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

// Tests that need a kernel with netem and prio: TestVM runs them inside the VM. Figures they
// measure are logged with the prefix "measure:" so TestVM can report them.

// Round trips are "slow" above slowRTT and "fast" below fastRTT; a 100ms delay on one
// direction lands well inside, even under emulation.
const (
	slowRTT = 90 * time.Millisecond
	fastRTT = 50 * time.Millisecond
)

var spaces = regexp.MustCompile(`\s+`)

// normalize collapses runs of blanks so tc's double spaces do not matter.
func normalize(s string) string { return spaces.ReplaceAllString(s, " ") }

func wantLines(t *testing.T, what, got string, want ...string) {
	t.Helper()
	n := normalize(got)
	for _, w := range want {
		if !strings.Contains(n, w) {
			t.Errorf("%s: missing %q in\n%s", what, w, got)
		}
	}
}

func inject(t *testing.T, f *Fault) fault.Undo {
	t.Helper()
	plan, err := f.Plan(t.Context(), t.Name())
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	u, err := f.Inject(t.Context(), plan)
	if err != nil {
		t.Fatalf("Inject: %v", err)
	}
	// t.Context() is already cancelled when cleanups run.
	t.Cleanup(func() { _ = f.Revert(context.Background(), u) })
	return u
}

func TestInVMDelay(t *testing.T) {
	requireVM(t)
	ns := newNS(t, 8080)
	ns.vethPair(t, "cc0", "cc1")
	const target = "10.99.0.2:8080"
	base := rtt(t, "", target, 5)

	// No interfaces named: the namespace's default-route interface, cc1 (not lo).
	f := mustNew(t, fault.Params{"netns": ns.Path, "delay": "100ms"}, faultEnv())
	plan, err := f.Plan(t.Context(), "1")
	if err != nil {
		t.Fatal(err)
	}
	if s := states(t, plan); !slices.Equal(s, []string{"cc1=planned"}) {
		t.Fatalf("planned %v", s)
	}
	start := time.Now()
	u, err := f.Inject(t.Context(), plan)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("measure: Inject (prio+pfifo+netem+filters) took %s", time.Since(start))

	show := ns.sh(t, "$TC -s qdisc show dev cc1")
	t.Logf("tc -s qdisc show dev cc1:\n%s", show)
	wantLines(t, "tc qdisc show", show,
		"qdisc prio c4a0: root", "bands 2 priomap 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",
		"qdisc netem c4a1: parent c4a0:2 limit 1000 delay 100ms",
		"qdisc pfifo c4a2: parent c4a0:1 limit 1000p")
	faulted := rtt(t, "", target, 5)
	t.Logf("measure: delay 100ms on cc1: round trip %s before, %s with the fault (+%s)", base, faulted, faulted-base)
	if d := faulted - base; d < 95*time.Millisecond || d > 180*time.Millisecond {
		t.Errorf("round trip rose by %s, want about 100ms", d)
	}

	start = time.Now()
	if err := f.Revert(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	t.Logf("measure: Revert took %s", time.Since(start))
	show = ns.qdiscs(t, "cc1")
	if strings.Contains(show, "c4a") || !strings.Contains(show, "noqueue") {
		t.Errorf("after Revert:\n%s", show)
	}
	after := rtt(t, "", target, 5)
	t.Logf("measure: after Revert: round trip %s", after)
	if after > base+20*time.Millisecond {
		t.Errorf("round trip %s after Revert, was %s before", after, base)
	}
}

func TestInVMLoss(t *testing.T) {
	requireVM(t)
	sh(t, "echo 16777216 > /proc/sys/net/core/rmem_max")
	rx, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	_ = rx.SetReadBuffer(16 << 20)

	f := mustNew(t, fault.Params{"interfaces": []any{"lo"}, "loss": "30%"}, faultEnv())
	inject(t, f)
	wantLines(t, "tc qdisc show", sh(t, "$TC qdisc show dev lo"), "qdisc netem c4a1: parent c4a0:2 limit 1000 loss 30%")

	const sent = 1000
	var got atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64)
		for {
			_ = rx.SetReadDeadline(time.Now().Add(time.Second))
			if _, _, err := rx.ReadFromUDP(buf); err != nil {
				return
			}
			got.Add(1)
		}
	}()
	tx, err := net.DialUDP("udp", nil, rx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	for i := range sent {
		if _, err := tx.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if i%50 == 49 {
			time.Sleep(2 * time.Millisecond) // let the reader keep up
		}
	}
	<-done
	lost := sent - int(got.Load())
	t.Logf("measure: loss 30%% on lo: %d of %d packets lost (%.1f%%)", lost, sent, 100*float64(lost)/sent)
	if lost < 250 || lost > 350 {
		t.Errorf("lost %d of %d, want 30%% ± 5%%", lost, sent)
	}
}

// Each case injects a scoped fault on cc1 (inside the namespace, so it delays the echo
// replies) and checks which round trips became slow.
func TestInVMScoped(t *testing.T) {
	requireVM(t)
	ns := newNS(t, 8080, 9090, 7070)
	ns.vethPair(t, "cc0", "cc1")
	type probe struct {
		from, to string
		slow     bool
	}
	for _, tc := range []struct {
		name   string
		params fault.Params
		env    fault.Env
		probes []probe
		show   []string // in `tc filter show dev cc1`
	}{
		{"ports", fault.Params{"ports": []any{8080}}, fault.Env{}, []probe{
			{"", "10.99.0.2:8080", true}, {"", "10.99.0.2:9090", false},
			{"", "[fd99::2]:8080", true}, {"", "[fd99::2]:9090", false},
		}, []string{"flowid c4a0:2", "match 1f900000/ffff0000 at 20", "match 00001f90/0000ffff at 20", "match 05000000/0f000000 at 0"}},
		{"exclude_ports", fault.Params{"exclude_ports": []any{9090}}, fault.Env{}, []probe{
			{"", "10.99.0.2:8080", true}, {"", "10.99.0.2:9090", false}, {"", "[fd99::2]:9090", false},
		}, []string{"flowid c4a0:1", "match 23820000/ffff0000 at 20", "match 23820000/ffff0000 at 40"}},
		{"agent port excluded by default", fault.Params{}, fault.Env{ListenPort: 7070}, []probe{
			{"", "10.99.0.2:8080", true}, {"", "10.99.0.2:7070", false},
		}, nil},
		{"cidrs", fault.Params{"cidrs": []any{"10.99.0.3"}}, fault.Env{}, []probe{
			{"10.99.0.3:0", "10.99.0.2:8080", true}, {"10.99.0.1:0", "10.99.0.2:8080", false},
		}, []string{"match 0a630003/ffffffff at 16"}},
		{"cidrs and ports", fault.Params{"cidrs": []any{"10.99.0.0/30"}, "ports": []any{8080}}, fault.Env{}, []probe{
			{"10.99.0.3:0", "10.99.0.2:8080", true}, {"10.99.0.1:0", "10.99.0.2:8080", true},
			{"10.99.0.3:0", "10.99.0.2:9090", false}, {"", "[fd99::2]:8080", false},
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := fault.Params{"netns": ns.Path, "interfaces": []any{"cc1"}, "delay": "100ms"}
			for k, v := range tc.params {
				p[k] = v
			}
			env := faultEnv()
			env.ListenPort = tc.env.ListenPort
			f := mustNew(t, p, env)
			u := inject(t, f)
			if len(tc.show) > 0 {
				wantLines(t, "tc filter show", ns.sh(t, "$TC filter show dev cc1"), tc.show...)
			}
			for _, pr := range tc.probes {
				d := rtt(t, pr.from, pr.to, 3)
				t.Logf("measure: %s: %s → %s round trip %s", tc.name, orAny(pr.from), pr.to, d)
				if pr.slow && d < slowRTT {
					t.Errorf("%s → %s: %s, want delayed", orAny(pr.from), pr.to, d)
				}
				if !pr.slow && d > fastRTT {
					t.Errorf("%s → %s: %s, want not delayed", orAny(pr.from), pr.to, d)
				}
			}
			if err := f.Revert(t.Context(), u); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func orAny(s string) string {
	if s == "" {
		return "*"
	}
	return s
}

// Every parameter reaches the kernel, as tc reads it back.
func TestInVMParameters(t *testing.T) {
	requireVM(t)
	for _, tc := range []struct {
		params fault.Params
		want   []string
	}{
		{fault.Params{"delay": "100ms", "jitter": "10ms", "correlation": "25%", "loss": "1%", "loss_correlation": "25%",
			"duplicate": "1%", "corrupt": "0.1%", "reorder": "25%", "gap": 5, "rate": "10mbit", "limit": 5000},
			[]string{"limit 5000", "delay 100ms 10ms 25%", "loss 1% 25%", "duplicate 1%", "reorder 25%", "corrupt 0.1%", "rate 10Mbit", "gap 5"}},
		{fault.Params{"delay": "50ms", "jitter": "20ms", "distribution": "normal"}, []string{"delay 50ms 20ms"}},
		{fault.Params{"delay": "50ms", "jitter": "20ms", "distribution": "pareto"}, []string{"delay 50ms 20ms"}},
		{fault.Params{"delay": "50ms", "jitter": "20ms", "distribution": "paretonormal"}, []string{"delay 50ms 20ms"}},
		{fault.Params{"rate": "40gbit"}, []string{"rate 40Gbit"}},
	} {
		p := fault.Params{"interfaces": []any{"lo"}}
		for k, v := range tc.params {
			p[k] = v
		}
		f := mustNew(t, p, faultEnv())
		u := inject(t, f)
		wantLines(t, f.Describe(), sh(t, "$TC qdisc show dev lo"), tc.want...)
		if err := f.Revert(t.Context(), u); err != nil {
			t.Fatal(err)
		}
	}
}

// A second run on an interface that already carries a fault is refused, and neither its
// Revert nor a Sweep that keeps the first run touches the first run's qdisc.
func TestInVMBusy(t *testing.T) {
	requireVM(t)
	ns := newNS(t)
	ns.innerPair(t, "cc-a", "cc-b")
	p := fault.Params{"netns": ns.Path, "delay": "10ms"}
	first := mustNew(t, p, faultEnv())
	second := mustNew(t, p, faultEnv())
	stale, err := second.Plan(t.Context(), "2") // before the first run
	if err != nil {
		t.Fatal(err)
	}
	u1 := inject(t, first)
	if _, err := second.Plan(t.Context(), "2"); !errors.Is(err, ErrBusy) {
		t.Errorf("Plan: %v, want ErrBusy", err)
	}
	u2, err := second.Inject(t.Context(), stale)
	if !errors.Is(err, ErrBusy) {
		t.Errorf("Inject: %v, want ErrBusy", err)
	}
	// What the runner does after a failed Inject: revert what it returned.
	if err := second.Revert(t.Context(), u2); err != nil {
		t.Errorf("Revert of the refused run: %v", err)
	}
	removed, err := second.Sweep(t.Context(), []fault.Undo{u1})
	if err != nil || len(removed) > 0 {
		t.Errorf("Sweep keeping the first run: %v %v", removed, err)
	}
	if !strings.Contains(ns.qdiscs(t, "cc-a"), "qdisc netem c4a1:") {
		t.Fatal("the first run's fault is gone")
	}
	removed, err = second.Sweep(t.Context(), nil)
	want := "removed prio c4a0: on cc-a in " + ns.Path
	if err != nil || !slices.Equal(removed, []string{want}) {
		t.Errorf("Sweep with nothing kept: %q, %v; want %q", removed, err, want)
	}
	if err := first.Revert(t.Context(), u1); err != nil {
		t.Errorf("Revert after the sweep: %v", err)
	}
}

// One experiment, two interfaces: both reverted, including after the agent died between
// the first and the second (a helper process that exits right after the first interface).
func TestInVMTwoInterfaces(t *testing.T) {
	requireVM(t)
	ns := newNS(t)
	ns.innerPair(t, "ca0", "ca1")
	params := fault.Params{"netns": ns.Path, "interfaces": []any{"ca0", "ca1"}, "delay": "50ms"}
	has := func(dev string) bool { return strings.Contains(ns.qdiscs(t, dev), "qdisc prio c4a0: root") }
	clean := func(when string) {
		t.Helper()
		if has("ca0") || has("ca1") {
			t.Errorf("%s: left behind:\n%s%s", when, ns.qdiscs(t, "ca0"), ns.qdiscs(t, "ca1"))
		}
	}

	f := mustNew(t, params, faultEnv())
	u := inject(t, f)
	if !has("ca0") || !has("ca1") {
		t.Fatalf("not on both:\n%s%s", ns.qdiscs(t, "ca0"), ns.qdiscs(t, "ca1"))
	}
	if err := f.Revert(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	clean("after Revert")

	crash := func() fault.Undo {
		t.Helper()
		planFile := filepath.Join(t.TempDir(), "plan.json")
		pj, _ := json.Marshal(params)
		self, _ := os.Executable()
		cmd := exec.Command(self)
		cmd.Env = append(os.Environ(), envHelper+"=inject-crash", envParams+"="+string(pj), envPlanFile+"="+planFile)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 3 {
			t.Fatalf("helper: %v\n%s", err, out)
		}
		if !has("ca0") || has("ca1") {
			t.Fatalf("after the crash, want the fault on ca0 only:\n%s%s", ns.qdiscs(t, "ca0"), ns.qdiscs(t, "ca1"))
		}
		plan, err := os.ReadFile(planFile)
		if err != nil {
			t.Fatal(err)
		}
		return plan
	}

	// Recovery: a new Fault, in another process than the one that injected, from the plan.
	plan := crash()
	if err := mustNew(t, params, faultEnv()).Revert(t.Context(), plan); err != nil {
		t.Errorf("Revert from the plan: %v", err)
	}
	clean("after recovery from the plan")

	// The journal is lost: a sweep finds it; a sweep that keeps the plan does not.
	plan = crash()
	g := mustNew(t, params, faultEnv())
	if removed, err := g.Sweep(t.Context(), []fault.Undo{plan}); err != nil || len(removed) > 0 {
		t.Errorf("Sweep keeping the plan: %v %v", removed, err)
	}
	removed, err := g.Sweep(t.Context(), nil)
	if err != nil || len(removed) != 1 || !strings.Contains(removed[0], "on ca0 in "+ns.Path) {
		t.Errorf("Sweep: %q %v", removed, err)
	}
	clean("after the sweep")
	t.Logf("swept: %s", removed)
}

// The namespace is found by its inode when the recorded path leads elsewhere.
func TestInVMNetnsMoved(t *testing.T) {
	requireVM(t)
	a, b := newNS(t), newNS(t)
	a.innerPair(t, "cc-a", "cc-b")
	b.innerPair(t, "cc-a", "cc-b")
	f := mustNew(t, fault.Params{"netns": a.Path, "delay": "10ms"}, faultEnv())
	raw := inject(t, f)
	u := decodeTestUndo(t, raw)
	u.Netns = b.Path // as if a's pid had been reused by a process in b
	moved, _ := json.Marshal(u)
	if err := f.Revert(t.Context(), moved); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(a.qdiscs(t, "cc-a"), "c4a0") {
		t.Error("the fault in the original namespace was not reverted")
	}
}
