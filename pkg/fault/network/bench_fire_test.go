package network

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chaoscron/chaoscron/journal"
	agentconfig "github.com/chaoscron/chaoscron/pkg/config"
	"github.com/chaoscron/chaoscron/pkg/fault"
	"github.com/chaoscron/chaoscron/pkg/runner"
)

// BenchmarkFireToApplied measures a fire of the network fault until it is in place: from the
// start of Fire (the run's started_at) until Inject returned (its applied_at), both read back
// from the journal. That covers the runner's checks, the intent committed and fsynced, Plan
// (namespace, links and root qdiscs read over rtnetlink) and Inject (prio, pfifo and netem
// added on a veth in a namespace of its own; no u32 filter, as there is no agent port to keep
// out). The run lasts 1ms; its revert and record happen before the next iteration, untimed.
//
// In turns with it, it times what a script would run instead, with iproute2's tc in the same
// namespace (removed again untimed):
//   - tc-p50-ms: `tc qdisc add dev cc-a root netem delay 100ms`, the one-liner; ratio is
//     p50-ms over this;
//   - tc3-p50-ms: the three qdiscs the fault builds, one tc each.
//
// It needs sch_netem, so it runs in the VM, started there by BenchmarkVMFireToApplied. In the
// VM the journal is on tmpfs, where fsync costs nothing: pkg/runner's BenchmarkFireToApplied
// measures the journal on a real disk.
func BenchmarkFireToApplied(b *testing.B) {
	requireNetns(b)
	ns, name := attachedNS(b, "chaoscron-fire")
	x := tcIn{b: b, bin: iproute(b, "tc"), ns: name}
	netem := "qdisc add dev cc-a root netem delay 100ms"
	same := []string{
		"qdisc add dev cc-a root handle c4a0: prio bands 2 priomap 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",
		"qdisc add dev cc-a parent c4a0:1 handle c4a2: pfifo limit 1000",
		"qdisc add dev cc-a parent c4a0:2 handle c4a1: netem limit 1000 delay 100ms",
	}
	if err := x.do(netem); err != nil {
		if inVM() {
			b.Fatal(err)
		}
		b.Skipf("no netem in this kernel (%v): BenchmarkVMFireToApplied runs this in the VM", err)
	}
	if err := x.do("qdisc del dev cc-a root"); err != nil {
		b.Fatal(err)
	}

	yaml := fmt.Sprintf(`agent: {listen: "off"}
experiments:
  - {name: lat, schedule: "@every 1h", duration: 1ms, fault: {type: network, netns: %q, interfaces: [cc-a], delay: 100ms}}
`, ns.Path)
	r, j := fireRunner(b, yaml, filepath.Join(b.TempDir(), "journal.db"))

	var ours, alone, three []time.Duration
	for b.Loop() {
		ours = append(ours, fireApplied(b, r, j, "lat"))
		alone = append(alone, x.timed(netem))
		three = append(three, x.timed(same...))
	}
	if out := ns.qdiscs(b, "cc-a"); strings.Contains(out, "netem") || strings.Contains(out, "c4a0:") {
		b.Errorf("a qdisc was left on cc-a:\n%s", out)
	}
	b.ReportMetric(msOf(quantile(ours, 50)), "p50-ms")
	b.ReportMetric(msOf(quantile(ours, 99)), "p99-ms")
	b.ReportMetric(msOf(quantile(alone, 50)), "tc-p50-ms")
	b.ReportMetric(msOf(quantile(three, 50)), "tc3-p50-ms")
	b.ReportMetric(msOf(quantile(ours, 50))/msOf(quantile(alone, 50)), "ratio")
}

// BenchmarkFireToAppliedTbf is BenchmarkFireToApplied for a bandwidth fault, on the host,
// whose kernel has tbf: a fire until the tbf is at the root of cc-a in a namespace of its own
// (the runner's checks, the intent committed and fsynced in a journal on disk, Plan and
// Inject), in turns with exec of `tc qdisc add dev cc-a root tbf ...` with the same rate,
// burst and limit (tc-p50-ms; ratio is p50-ms over it). Runs last 1ms; their revert and
// record, and removing tc's qdisc, are not timed.
func BenchmarkFireToAppliedTbf(b *testing.B) {
	requireNetns(b)
	ns, name := attachedNS(b, "chaoscron-tbf")
	x := tcIn{b: b, bin: iproute(b, "tc"), ns: name}
	tbf := mustNew(b, fault.Params{"bandwidth": "1mbit"}, faultEnv()).cfg.tbf
	add := fmt.Sprintf("qdisc add dev cc-a root tbf rate 1mbit burst %d limit %d", tbf.Burst, tbf.Limit)
	x.timed(add) // tbf is there, and tc can add it

	// The journal's fsyncs are part of the figure: say where they went.
	dir := b.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		b.Fatal(err)
	}
	if st.Type == unix.TMPFS_MAGIC {
		b.Logf("the journal is on tmpfs (%s), where fsync costs nothing", dir)
	}
	yaml := fmt.Sprintf(`agent: {listen: "off"}
experiments:
  - {name: bw, schedule: "@every 1h", duration: 1ms, fault: {type: network, netns: %q, interfaces: [cc-a], bandwidth: 1mbit}}
`, ns.Path)
	r, j := fireRunner(b, yaml, filepath.Join(dir, "journal.db"))

	var ours, alone []time.Duration
	for b.Loop() {
		ours = append(ours, fireApplied(b, r, j, "bw"))
		alone = append(alone, x.timed(add))
	}
	if out := ns.qdiscs(b, "cc-a"); strings.Contains(out, "tbf") || strings.Contains(out, "c4a0:") {
		b.Errorf("a qdisc was left on cc-a:\n%s", out)
	}
	b.ReportMetric(msOf(quantile(ours, 50)), "p50-ms")
	b.ReportMetric(msOf(quantile(ours, 99)), "p99-ms")
	b.ReportMetric(msOf(quantile(alone, 50)), "tc-p50-ms")
	b.ReportMetric(msOf(quantile(ours, 50))/msOf(quantile(alone, 50)), "ratio")
}

// attachedNS starts a namespace with the veth pair cc-a, cc-b and gives it a name, for
// `tc -n name`; the name goes when b ends.
func attachedNS(b *testing.B, prefix string) (*testNS, string) {
	b.Helper()
	ns := newNS(b)
	ns.innerPair(b, "cc-a", "cc-b")
	name := fmt.Sprintf("%s-%d", prefix, os.Getpid())
	sh(b, fmt.Sprintf("$IP netns attach %s %d", name, ns.PID))
	b.Cleanup(func() { _, _ = shErr(b, "", "$IP netns delete "+name) })
	return ns, name
}

// tcIn runs iproute2's tc in a named namespace.
type tcIn struct {
	b       *testing.B
	bin, ns string
}

func (x tcIn) do(args string) error {
	full := append([]string{"-n", x.ns}, strings.Fields(args)...)
	if out, err := exec.Command(x.bin, full...).CombinedOutput(); err != nil {
		return fmt.Errorf("tc %s: %w: %s", strings.Join(full, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// timed runs each of scripts, one tc each, and returns how long they took together; cc-a's
// root is removed again afterwards, untimed.
func (x tcIn) timed(scripts ...string) time.Duration {
	x.b.Helper()
	start := time.Now()
	for _, s := range scripts {
		if err := x.do(s); err != nil {
			x.b.Fatal(err)
		}
	}
	d := time.Since(start)
	if err := x.do("qdisc del dev cc-a root"); err != nil {
		x.b.Fatal(err)
	}
	return d
}

// fireApplied fires experiment name, waits for its run to end, and returns how long the
// fault took to be in place (started_at → applied_at), failing b unless the run succeeded
// and was cleaned up.
func fireApplied(b *testing.B, r *runner.Runner, j *journal.Journal, name string) time.Duration {
	b.Helper()
	id, err := r.Fire(b.Context(), name, runner.TriggerFire, time.Time{})
	if err != nil {
		b.Fatal(err)
	}
	r.Wait()
	rec, err := j.Get(id)
	if err != nil {
		b.Fatal(err)
	}
	if rec.Status != journal.Succeeded || rec.Cleanup != journal.CleanupDone || rec.AppliedAt.IsZero() {
		b.Fatalf("run %d: status %s, cleanup %s, applied at %s: %s", id, rec.Status, rec.Cleanup, rec.AppliedAt, rec.Error)
	}
	return rec.AppliedAt.Sub(rec.StartedAt)
}

// fireRunner builds a runner for yaml with its journal at path; both are shut down when b
// ends, before the namespace goes, so a run still in place is reverted by the runner itself.
func fireRunner(b *testing.B, yaml, path string) (*runner.Runner, *journal.Journal) {
	b.Helper()
	cfg, err := agentconfig.Parse([]byte(yaml), "bench.yaml", map[string]any{"journal.path": path})
	if err != nil {
		b.Fatalf("config: %v", err)
	}
	j, err := journal.Open(path, journal.Options{})
	if err != nil {
		b.Fatal(err)
	}
	r, err := runner.New(runner.Options{Config: cfg, Journal: j, Env: fault.Env{Self: os.Getpid()},
		Agent: journal.Agent{Instance: "bench", PID: os.Getpid()}})
	if err != nil {
		_ = j.Close()
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := r.Shutdown(ctx); err != nil {
			b.Error(err)
		}
		if err := j.Close(); err != nil {
			b.Error(err)
		}
	})
	return r, j
}

// quantile is the p-th percentile (0..100) of d, nearest rank below.
func quantile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
