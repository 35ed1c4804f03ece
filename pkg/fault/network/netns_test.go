package network

import (
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

// Tests in a real network namespace that need no netem: they run on the host (whose kernel
// has tbf but neither netem nor prio) and again inside the VM.

func TestNetnsPlan(t *testing.T) {
	requireNetns(t)
	ns := newNS(t)
	ns.innerPair(t, "cc-a", "cc-b")
	nsInode, err := inodeOf(ns.Path)
	if err != nil {
		t.Fatal(err)
	}

	plan := func(p fault.Params) (undo, error) {
		t.Helper()
		b, err := mustNew(t, p, faultEnv()).Plan(t.Context(), "7")
		if err != nil {
			return undo{}, err
		}
		return decodeTestUndo(t, b), nil
	}

	t.Run("default route interface", func(t *testing.T) {
		u, err := plan(fault.Params{"netns": ns.Path, "delay": "100ms"})
		if err != nil {
			t.Fatal(err)
		}
		want := []ifaceUndo{{Name: "cc-a", Index: ns.ifindex(t, "cc-a"), State: statePlanned, Previous: &qdiscRef{Kind: "noqueue", Handle: 0}}}
		if !slices.EqualFunc(u.Interfaces, want, eqIface) {
			t.Errorf("interfaces = %+v, want %+v", u.Interfaces, want)
		}
		if u.NetnsInode != nsInode || u.Netns != ns.Path || u.Run != "7" || u.Qdisc != (qdiscRef{"prio", rootHandle}) {
			t.Errorf("undo = %+v (netns inode %d)", u, nsInode)
		}
	})
	t.Run("named, lo included when named", func(t *testing.T) {
		u, err := plan(fault.Params{"netns": ns.Path, "delay": "1ms", "interfaces": []any{"lo", "cc-b"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(u.Interfaces) != 2 || u.Interfaces[0].Index != 1 || u.Interfaces[1].Index != ns.ifindex(t, "cc-b") {
			t.Errorf("interfaces = %+v", u.Interfaces)
		}
	})
	t.Run("missing interface", func(t *testing.T) {
		_, err := plan(fault.Params{"netns": ns.Path, "delay": "1ms", "interfaces": []any{"nope0"}})
		if err == nil || !strings.Contains(err.Error(), `no interface "nope0"`) || !strings.Contains(err.Error(), "cc-a") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("no default route", func(t *testing.T) {
		bare := newNS(t)
		_, err := plan(fault.Params{"netns": bare.Path, "delay": "1ms"})
		if err == nil || !strings.Contains(err.Error(), "no interface has a default route") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("missing namespace", func(t *testing.T) {
		_, err := plan(fault.Params{"netns": "/run/netns/chaoscron-does-not-exist", "delay": "1ms"})
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("own namespace", func(t *testing.T) {
		u, err := plan(fault.Params{"delay": "1ms", "interfaces": []any{"lo"}})
		if err != nil {
			t.Fatal(err)
		}
		self, _ := inodeOf("/proc/self/ns/net")
		if u.NetnsInode != self || u.Netns != "" || u.Interfaces[0].Index != 1 {
			t.Errorf("undo = %+v", u)
		}
	})
}

func eqIface(a, b ifaceUndo) bool {
	return a.Name == b.Name && a.Index == b.Index && a.State == b.State &&
		(a.Previous == nil) == (b.Previous == nil) && (a.Previous == nil || *a.Previous == *b.Previous)
}

// A root qdisc somebody else set up is never replaced or removed: not by Plan, Inject,
// Revert or Sweep, by a netem or a bandwidth fault. At chaoscron's own handle c4a0:, a kind
// chaoscron never puts at the root (htb) is foreign too; a tbf there could be chaoscron's.
func TestNetnsForeignRoot(t *testing.T) {
	requireNetns(t)
	for _, tc := range []struct{ name, add string }{
		{"tbf 1:", "handle 1: tbf rate 1mbit burst 32kbit latency 400ms"},
		{"htb c4a0:", "handle c4a0: htb default 1"},
	} {
		for _, p := range []fault.Params{{"delay": "100ms"}, {"bandwidth": "1mbit"}} {
			t.Run(tc.name+" "+mustNew(t, p, faultEnv()).cfg.rootKind(), func(t *testing.T) {
				testForeignRoot(t, tc.name, tc.add, p)
			})
		}
	}
}

func testForeignRoot(t *testing.T, name, add string, p fault.Params) {
	ns := newNS(t)
	ns.innerPair(t, "cc-a", "cc-b")
	params := fault.Params{"netns": ns.Path}
	for k, v := range p {
		params[k] = v
	}
	f := mustNew(t, params, faultEnv())
	stale, err := f.Plan(t.Context(), "1") // made before the foreign root is there
	if err != nil {
		t.Fatal(err)
	}
	ns.sh(t, "$TC qdisc add dev cc-a root "+add)
	before := ns.qdiscs(t, "cc-a")
	if kind, handle, _ := strings.Cut(name, " "); !strings.Contains(before, "qdisc "+kind+" "+handle+" root") {
		t.Fatalf("%s not there: %s", name, before)
	}

	_, err = f.Plan(t.Context(), "2")
	if !errors.Is(err, ErrForeignRoot) || !strings.Contains(err.Error(), name) {
		t.Errorf("Plan: %v, want ErrForeignRoot naming %s", err, name)
	}
	got, err := f.Inject(t.Context(), stale)
	if !errors.Is(err, ErrForeignRoot) {
		t.Errorf("Inject: %v, want ErrForeignRoot", err)
	}
	if s := states(t, got); !slices.Equal(s, []string{"cc-a=untouched"}) {
		t.Errorf("undo after refused Inject: %v", s)
	}
	for i := range 2 {
		if err := f.Revert(t.Context(), stale); err != nil {
			t.Errorf("Revert #%d: %v", i+1, err)
		}
	}
	removed, err := f.Sweep(t.Context(), nil)
	if err != nil || len(removed) > 0 {
		t.Errorf("Sweep: %v %v", removed, err)
	}
	if after := ns.qdiscs(t, "cc-a"); withoutCounters(after) != withoutCounters(before) {
		t.Errorf("%s changed:\nbefore %s\nafter  %s", name, before, after)
	}
}

// packetCounter is htb's count of packets sent past its classes, which any packet the
// namespace sends meanwhile (an IPv6 router solicitation, say) moves.
var packetCounter = regexp.MustCompile(`direct_packets_stat \d+`)

// withoutCounters is `tc qdisc show` output without the counters in it, for comparing set-ups.
func withoutCounters(s string) string {
	return packetCounter.ReplaceAllString(s, "direct_packets_stat -")
}

func TestNetnsRevertAbsent(t *testing.T) {
	requireNetns(t)
	ns := newNS(t)
	ns.innerPair(t, "cc-a", "cc-b")
	f := mustNew(t, fault.Params{"netns": ns.Path, "delay": "100ms", "interfaces": []any{"cc-a", "cc-b"}}, faultEnv())
	plan, err := f.Plan(t.Context(), "1")
	if err != nil {
		t.Fatal(err)
	}
	before := ns.qdiscs(t, "cc-a") + ns.qdiscs(t, "cc-b")
	for i := range 2 {
		if err := f.Revert(t.Context(), plan); err != nil {
			t.Errorf("Revert #%d of a plan never injected: %v", i+1, err)
		}
	}
	if after := ns.qdiscs(t, "cc-a") + ns.qdiscs(t, "cc-b"); after != before {
		t.Errorf("Revert changed qdiscs:\n%s\n%s", before, after)
	}

	// The interface has gone.
	ns.sh(t, "$IP link del cc-a")
	if err := f.Revert(t.Context(), plan); err != nil {
		t.Errorf("Revert with the interfaces gone: %v", err)
	}
	// And the namespace too.
	ns.Kill()
	if err := f.Revert(t.Context(), plan); err != nil {
		t.Errorf("Revert with the namespace gone: %v", err)
	}
}

func TestNetnsSweepEmpty(t *testing.T) {
	requireNetns(t)
	ns := newNS(t)
	ns.innerPair(t, "cc-a", "cc-b")
	f := mustNew(t, fault.Params{"netns": ns.Path, "delay": "1ms"}, faultEnv())
	removed, err := f.Sweep(t.Context(), []fault.Undo{json.RawMessage(`{"run":"cpu"}`), json.RawMessage(`[1]`)})
	if err != nil || len(removed) > 0 {
		t.Errorf("Sweep of a clean namespace: %v, %v", removed, err)
	}
	gone := mustNew(t, fault.Params{"netns": "/proc/999999999/ns/net", "delay": "1ms"}, faultEnv())
	removed, err = gone.Sweep(t.Context(), nil)
	if err != nil || len(removed) > 0 {
		t.Errorf("Sweep of a namespace that does not exist: %v, %v", removed, err)
	}
}

// When Inject fails part-way, nothing is left and the returned undo says so. On the host the
// kernel has no prio, so the first add fails; in the VM the second interface is made to fail.
func TestNetnsInjectRollsBack(t *testing.T) {
	requireNetns(t)
	ns := newNS(t)
	ns.innerPair(t, "cc-a", "cc-b")
	f := mustNew(t, fault.Params{"netns": ns.Path, "delay": "100ms", "interfaces": []any{"cc-a", "cc-b"}}, faultEnv())
	hooked := errors.New("made to fail after the first interface")
	f.afterInterface = func(i int, name string) error {
		if i == 0 {
			return hooked
		}
		return nil
	}
	before := ns.qdiscs(t, "cc-a") + ns.qdiscs(t, "cc-b")
	plan, err := f.Plan(t.Context(), "1")
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.Inject(t.Context(), plan)
	if err == nil {
		t.Fatal("Inject succeeded")
	}
	t.Logf("Inject: %v", err)
	if !errors.Is(err, hooked) && !strings.Contains(err.Error(), "add prio") {
		t.Errorf("unexpected error %v", err)
	}
	if s := states(t, got); !slices.Equal(s, []string{"cc-a=untouched", "cc-b=untouched"}) {
		t.Errorf("undo states %v", s)
	}
	if after := ns.qdiscs(t, "cc-a") + ns.qdiscs(t, "cc-b"); after != before {
		t.Errorf("left behind:\n%s", after)
	}
	if err := f.Revert(t.Context(), got); err != nil {
		t.Errorf("Revert: %v", err)
	}
}
