package runner

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkFireToApplied measures a fire until its fault is in place: from the start of
// Fire (the run's started_at) until Inject returned (its applied_at), both read back from the
// journal. That covers the checks, the intent committed and fsynced, and the injection
// itself. Two faults take turns:
//   - disk: a real 64 KiB fill (O_TMPFILE, fallocate, xattr, fsync, link, fsync of the
//     directory), the cheapest real fault that runs unprivileged anywhere;
//   - noop: a fault that changes nothing, so what remains is the runner and the journal.
//
// return-p50-ms is until Fire returns, which includes journaling the run as active (a second
// fsynced commit). The hold, revert and record happen between iterations, untimed.
//
// In the same iterations, as root with iproute2 installed, it times what the agent replaces:
// running `tc` to add one root qdisc (tbf, which every kernel has) to lo in a network
// namespace of its own, so both see the same load. The network package's BenchmarkQdiscAdd
// compares netlink with tc for the network fault itself.
//
//	go test -run '^$' -bench FireToApplied -benchtime 200x ./pkg/runner
func BenchmarkFireToApplied(b *testing.B) {
	dir := b.TempDir()
	yaml := `agent: {listen: "off"}
` + experiments(1, "fill", "@every 1h", "1ms", fmt.Sprintf("{type: disk, path: %q, size: 64KiB, reserve: 1MiB}", dir)) +
		strings.TrimPrefix(experiments(1, "noop", "@every 1h", "1ms", "{type: bench-noop}"), "experiments:\n")
	r, j := benchRunner(b, yaml, filepath.Join(b.TempDir(), "journal.db"), "bench")
	defer shutdown(b, r, j)
	tc := tcExec(b)

	var disk, nop, ret, alt []time.Duration
	applied := func(id uint64) time.Duration {
		rec, err := j.Get(id)
		if err != nil {
			b.Fatal(err)
		}
		return rec.AppliedAt.Sub(rec.StartedAt)
	}
	for range b.N {
		start := time.Now()
		id, err := r.Fire(b.Context(), "fill-000", TriggerFire, time.Time{})
		if err != nil {
			b.Fatal(err)
		}
		ret = append(ret, time.Since(start))
		r.Wait()
		idNoop, err := r.Fire(b.Context(), "noop-000", TriggerFire, time.Time{})
		if err != nil {
			b.Fatal(err)
		}
		r.Wait()
		disk, nop = append(disk, applied(id)), append(nop, applied(idNoop))
		if tc != nil {
			alt = append(alt, tc())
		}
	}
	b.ReportMetric(ms(median(disk)), "p50-ms")
	b.ReportMetric(ms(percentile(sorted(disk), 99)), "p99-ms")
	b.ReportMetric(ms(median(nop)), "noop-p50-ms")
	b.ReportMetric(ms(median(ret)), "return-p50-ms")
	if len(alt) > 0 {
		b.ReportMetric(ms(median(alt)), "tc-p50-ms")
		b.ReportMetric(ms(median(disk))/ms(median(alt)), "ratio")
	}
}

// tcExec prepares a network namespace and returns a function that times one
// `tc qdisc add` of a tbf root qdisc on its lo (and removes it again, untimed); nil when not
// root or without ip and tc.
func tcExec(b *testing.B) func() time.Duration {
	ip, err1 := exec.LookPath("ip")
	tc, err2 := exec.LookPath("tc")
	if os.Geteuid() != 0 || err1 != nil || err2 != nil {
		b.Log("tc comparison skipped: needs root, ip and tc")
		return nil
	}
	ns := fmt.Sprintf("chaoscron-bench-%d", os.Getpid())
	if out, err := exec.Command(ip, "netns", "add", ns).CombinedOutput(); err != nil {
		b.Logf("tc comparison skipped: ip netns add: %v: %s", err, out)
		return nil
	}
	b.Cleanup(func() { _ = exec.Command(ip, "netns", "delete", ns).Run() })
	add := []string{"-n", ns, "qdisc", "add", "dev", "lo", "root", "handle", "c4a0:", "tbf", "rate", "1mbit", "burst", "4000", "latency", "400ms"}
	del := []string{"-n", ns, "qdisc", "del", "dev", "lo", "root"}
	return func() time.Duration {
		start := time.Now()
		if out, err := exec.Command(tc, add...).CombinedOutput(); err != nil {
			b.Fatalf("tc %v: %v: %s", add, err, out)
		}
		d := time.Since(start)
		if out, err := exec.Command(tc, del...).CombinedOutput(); err != nil {
			b.Fatalf("tc %v: %v: %s", del, err, out)
		}
		return d
	}
}
