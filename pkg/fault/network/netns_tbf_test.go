package network

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	tc "github.com/florianl/go-tc"

	"github.com/chaoscron/chaoscron/pkg/fault"
	"github.com/chaoscron/chaoscron/pkg/fault/internal/netns"
)

// Bandwidth faults (tbf) in real network namespaces. The host's kernel has sch_tbf, so these
// run on the host, and again inside the VM (TestVM), which also has sch_prio for the scoped
// layout.

// tcSameTbf is what tc is asked for to compare with the fault's "bandwidth: 8mbit" (burst
// 16KiB and limit 16384 + 50ms of 1e6 B/s by default).
const tcSameTbf = "tbf rate 8mbit burst 16384 limit 66384"

func TestNetnsBandwidth(t *testing.T) {
	requireNetns(t)
	clk, err := readClock("/proc")
	if err != nil {
		t.Fatal(err)
	}
	ns := newNS(t)
	ns.innerPair(t, "cc-a", "cc-b")
	index := ns.ifindex(t, "cc-a")
	before := ns.qdiscs(t, "cc-a")
	// What tc makes of the same parameters, on the other end and under a handle of its own.
	ns.sh(t, "$TC qdisc add dev cc-b root handle 1: "+tcSameTbf)
	want := tbfLine(t, ns.qdiscs(t, "cc-b"))
	ns.sh(t, "$TC qdisc del dev cc-b root")
	params := fault.Params{"netns": ns.Path, "interfaces": []any{"cc-a"}, "bandwidth": "8mbit"}

	t.Run("alone at the root", func(t *testing.T) {
		f := mustNew(t, params, faultEnv())
		if f.cfg.tbf != (tbfConfig{Rate: 1_000_000, Burst: 16384, Limit: 66384}) {
			t.Fatalf("tbf %+v: not what %q says", f.cfg.tbf, tcSameTbf)
		}
		raw := inject(t, f)
		u := decodeTestUndo(t, raw)
		if u.Qdisc != (qdiscRef{"tbf", rootHandle}) || u.Tbf != "rate 8Mbit burst 16KiB limit 66384B" || u.Netem != "" {
			t.Errorf("undo %s", raw)
		}
		if s := states(t, raw); !slices.Equal(s, []string{"cc-a=applied"}) {
			t.Errorf("states %v", s)
		}

		show := ns.qdiscs(t, "cc-a")
		t.Logf("tc qdisc show dev cc-a: %s", strings.TrimSpace(show))
		wantLines(t, "tc qdisc show", show, "qdisc tbf c4a0: root", "rate 8Mbit")
		if got := tbfLine(t, show); got != want {
			t.Errorf("tc reads ours as %q, its own with %q as %q", got, tcSameTbf, want)
		}
		q := netlinkRoot(t, ns, index)
		checkTbfParms(t, q, f.cfg.tbf, clk)

		if _, err := f.Plan(t.Context(), "2"); !errors.Is(err, ErrBusy) {
			t.Errorf("Plan of a second run: %v, want ErrBusy", err)
		}
		for i := range 2 {
			if err := f.Revert(t.Context(), raw); err != nil {
				t.Fatalf("Revert #%d: %v", i+1, err)
			}
			if after := ns.qdiscs(t, "cc-a"); after != before {
				t.Errorf("after Revert #%d:\n%s\nwant the root of before:\n%s", i+1, after, before)
			}
		}
	})

	t.Run("scoped, on prio's band", func(t *testing.T) {
		scoped := fault.Params{"ports": []any{5201}}
		for k, v := range params {
			scoped[k] = v
		}
		f := mustNew(t, scoped, faultEnv())
		plan, err := f.Plan(t.Context(), "3")
		if err != nil {
			t.Fatal(err)
		}
		if u := decodeTestUndo(t, plan); u.Qdisc != (qdiscRef{"prio", rootHandle}) || u.Tbf == "" {
			t.Errorf("plan %s", plan)
		}
		raw, err := f.Inject(t.Context(), plan)
		if !hasPrio(t, ns) {
			// This kernel cannot: the run must fail cleanly, with nothing left behind.
			if err == nil || !strings.Contains(err.Error(), "add prio") {
				t.Errorf("Inject without sch_prio: %v", err)
			}
			if s := states(t, raw); !slices.Equal(s, []string{"cc-a=untouched"}) {
				t.Errorf("states %v", s)
			}
			if after := ns.qdiscs(t, "cc-a"); after != before {
				t.Errorf("left behind:\n%s", after)
			}
			t.Log("no sch_prio in this kernel: the scoped layout is checked in the VM (TestVM)")
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = f.Revert(context.Background(), raw) }) // t.Context() is done by then
		show := ns.qdiscs(t, "cc-a")
		t.Logf("tc qdisc show dev cc-a:\n%s", show)
		wantLines(t, "tc qdisc show", show, "qdisc prio c4a0: root", "qdisc tbf c4a1: parent c4a0:2", "rate 8Mbit",
			"qdisc pfifo c4a2: parent c4a0:1")
		if got := tbfLine(t, show); got != want {
			t.Errorf("tc reads ours as %q, its own with %q as %q", got, tcSameTbf, want)
		}
		wantLines(t, "tc filter show", ns.sh(t, "$TC filter show dev cc-a"), "flowid c4a0:2", "match 14510000/ffff0000 at 20")
		if err := f.Revert(t.Context(), raw); err != nil {
			t.Fatal(err)
		}
		if after := ns.qdiscs(t, "cc-a"); after != before {
			t.Errorf("after Revert:\n%s", after)
		}
	})
}

// A leftover tbf (no undo owns it) is swept; another tool's tbf next to it is not.
func TestNetnsBandwidthSweep(t *testing.T) {
	requireNetns(t)
	ns := newNS(t)
	ns.innerPair(t, "cc-a", "cc-b")
	p := fault.Params{"netns": ns.Path, "interfaces": []any{"cc-a"}, "bandwidth": "1mbit"}
	f := mustNew(t, p, faultEnv())
	u := inject(t, f)
	ns.sh(t, "$TC qdisc add dev cc-b root handle 1: tbf rate 1mbit burst 32kbit latency 400ms")
	foreign := ns.qdiscs(t, "cc-b")

	g := mustNew(t, p, faultEnv()) // as a later agent process would build it
	if removed, err := g.Sweep(t.Context(), []fault.Undo{u}); err != nil || len(removed) > 0 {
		t.Errorf("Sweep keeping the run: %q %v", removed, err)
	}
	if !strings.Contains(ns.qdiscs(t, "cc-a"), "qdisc tbf c4a0: root") {
		t.Fatal("the run's tbf is gone")
	}
	removed, err := g.Sweep(t.Context(), nil)
	want := "removed tbf c4a0: on cc-a in " + ns.Path
	if err != nil || !slices.Equal(removed, []string{want}) {
		t.Errorf("Sweep: %q, %v; want %q", removed, err, want)
	}
	if got := ns.qdiscs(t, "cc-a"); strings.Contains(got, "c4a0") || !strings.Contains(got, "noqueue") {
		t.Errorf("cc-a after the sweep:\n%s", got)
	}
	if got := ns.qdiscs(t, "cc-b"); got != foreign {
		t.Errorf("the foreign tbf changed:\nbefore %s\nafter  %s", foreign, got)
	}
	if err := f.Revert(t.Context(), u); err != nil {
		t.Errorf("Revert after the sweep: %v", err)
	}
}

// The tbf shapes: a TCP transfer between two namespaces is bounded by the rate. Only a bound
// that load cannot break is asserted: tbf passes at most its burst plus rate × time, and a
// busy machine only makes a transfer slower.
func TestNetnsBandwidthShapes(t *testing.T) {
	requireNetns(t)
	a, b := newNS(t), newNS(t)
	a.sh(t, fmt.Sprintf(`$IP link add ccs0 type veth peer name ccs1 netns %d
$IP addr add 10.97.0.1/24 dev ccs0
$IP link set ccs0 up`, b.PID))
	b.sh(t, "$IP addr add 10.97.0.2/24 dev ccs1\n$IP link set ccs1 up")
	var ln *net.TCPListener
	if err := inNetns(b.Path, func() error {
		l, err := net.Listen("tcp", "10.97.0.2:0")
		if err == nil {
			ln = l.(*net.TCPListener)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	const size = 2 << 20
	const rate = 1_000_000 // bytes per second: 8mbit
	// transfer sends size bytes from a to b and returns the time until b has read them all.
	transfer := func() time.Duration {
		t.Helper()
		var c net.Conn
		if err := inNetns(a.Path, func() (err error) {
			c, err = net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = ln.SetDeadline(time.Now().Add(5 * time.Second))
		srv, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		start := time.Now()
		go func() {
			_, _ = c.Write(make([]byte, size))
			_ = c.(*net.TCPConn).CloseWrite()
		}()
		_ = srv.SetReadDeadline(time.Now().Add(60 * time.Second)) // 30 times what it takes
		n, err := io.Copy(io.Discard, srv)
		if err != nil || n != size {
			t.Fatalf("transfer: %d of %d bytes: %v", n, size, err)
		}
		return time.Since(start)
	}
	mbit := func(d time.Duration) float64 { return size * 8 / d.Seconds() / 1e6 }

	base := transfer()
	f := mustNew(t, fault.Params{"netns": a.Path, "interfaces": []any{"ccs0"}, "bandwidth": "8mbit"}, faultEnv())
	u := inject(t, f)
	shaped := transfer()
	if err := f.Revert(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	after := transfer()
	t.Logf("measure: 2MiB over a veth: %s unshaped (%.0f Mbit/s), %s through tbf 8mbit (%.2f Mbit/s), %s after Revert (%.0f Mbit/s)",
		base.Round(time.Millisecond), mbit(base), shaped.Round(time.Millisecond), mbit(shaped), after.Round(time.Millisecond), mbit(after))
	// At the rate it takes (2MiB - 16KiB) / 1e6 B/s = 2.08s; half of that is the bound.
	if floor := time.Duration(float64(size-f.cfg.tbf.Burst) / rate / 2 * float64(time.Second)); shaped < floor {
		t.Errorf("2MiB through tbf 8mbit took %s: faster than twice the rate (%s)", shaped, floor)
	}
}

// tbfLine returns tc's line for the tbf qdisc from "rate" on: what it does, without its
// handle, parent and refcnt.
func tbfLine(t testing.TB, show string) string {
	t.Helper()
	for _, l := range strings.Split(show, "\n") {
		if !strings.HasPrefix(l, "qdisc tbf ") {
			continue
		}
		if _, after, ok := strings.Cut(normalize(l), " rate "); ok {
			return "rate " + strings.TrimSpace(after)
		}
	}
	t.Fatalf("no tbf in:\n%s", show)
	return ""
}

// hasPrio reports whether the kernel has sch_prio (the host's has not), trying it on cc-b.
func hasPrio(t testing.TB, ns *testNS) bool {
	t.Helper()
	if _, err := shErr(t, ns.Path, "$TC qdisc add dev cc-b root handle 9: prio"); err != nil {
		return false
	}
	ns.sh(t, "$TC qdisc del dev cc-b root")
	return true
}

// netlinkRoot reads the root qdisc of ifindex in ns over netlink, with go-tc (which decodes
// every qdisc of the namespace: only lo and the veth pair are there).
func netlinkRoot(t testing.TB, ns *testNS, index int) tc.Object {
	t.Helper()
	h, err := netns.Open("/proc", ns.Path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	c, err := dialTC(h)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	all, err := c.Qdisc().Get()
	if err != nil {
		t.Fatalf("go-tc qdisc dump: %v", err)
	}
	for _, q := range all {
		if int(q.Ifindex) == index && q.Parent == uint32(handleRoot) {
			return q
		}
	}
	t.Fatalf("no root qdisc on ifindex %d in %d qdiscs", index, len(all))
	return tc.Object{}
}

// checkTbfParms compares a tbf read back from the kernel with cfg: rate, limit, and the
// bucket, which the kernel keeps in ns and reports in scheduler ticks again.
func checkTbfParms(t testing.TB, q tc.Object, cfg tbfConfig, clk clock) {
	t.Helper()
	if q.Kind != "tbf" || Handle(q.Handle) != rootHandle || q.Tbf == nil || q.Tbf.Parms == nil {
		t.Fatalf("root %s %s, want tbf %s with parameters", q.Kind, Handle(q.Handle), rootHandle)
	}
	p := q.Tbf.Parms
	ticks, err := cfg.bufferTicks(clk)
	if err != nil {
		t.Fatal(err)
	}
	burst := float64(p.Buffer) / clk.ticksPerSec() * float64(p.Rate.Rate)
	t.Logf("over netlink: rate %d B/s, limit %d B, buffer %d ticks (%.0f bytes of bucket)", p.Rate.Rate, p.Limit, p.Buffer, burst)
	if uint64(p.Rate.Rate) != cfg.Rate || p.Limit != cfg.Limit || p.Buffer != ticks {
		t.Errorf("kernel has rate %d limit %d buffer %d; sent rate %d limit %d buffer %d",
			p.Rate.Rate, p.Limit, p.Buffer, cfg.Rate, cfg.Limit, ticks)
	}
	// Ticks are rounded up: at most one tick's worth above the burst asked (floats aside).
	if burst < float64(cfg.Burst)-1e-6 || burst > float64(cfg.Burst)+float64(cfg.Rate)/clk.ticksPerSec()+1e-6 {
		t.Errorf("the kernel's bucket holds %.1f bytes, want %d", burst, cfg.Burst)
	}
}

// inNetns runs fn on an OS thread inside the namespace at path (netns.Do, as the faults
// do): sockets fn opens stay in that namespace.
func inNetns(path string, fn func() error) error {
	ns, err := netns.Open("/proc", path, 0)
	if err != nil {
		return err
	}
	defer ns.Close()
	return ns.Do(fn)
}
