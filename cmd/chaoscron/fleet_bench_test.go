package main

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/internal/kube"
)

// BenchmarkFleetIdle: what an idle fleet agent costs the API server and its pod (the binary's
// size is the bench table's own row: the test binary here is not stripped). Five agents
// with the default renew (5 s) and nothing due; the API server's own apiserver_request_total
// over a window, less the same window with no agent (its own Lease renewals), per agent per
// minute; the audit log's count of the agents' requests as a cross-check (it sees a watch when
// it starts; the metric only when it ends). Window: CHAOSCRON_BENCH_FLEET_IDLE (default 60s).
func BenchmarkFleetIdle(b *testing.B) {
	window := 60 * time.Second
	if v := os.Getenv("CHAOSCRON_BENCH_FLEET_IDLE"); v != "" {
		window, _ = time.ParseDuration(v)
	}
	const n = 5
	for range b.N {
		f := newFleetRunOf(b, 0, fleetOpts{maxSlot: 1, dur: time.Second, schedule: "@yearly", renew: 5 * time.Second, stale: 30 * time.Second})
		base := measure(b, f.c, window)
		for i := range n {
			f.addAgent(i)
		}
		eventually(b, 30*time.Second, "five members", func() bool { return len(f.status().Members) == n })
		time.Sleep(time.Second)
		t0 := time.Now()
		with := measure(b, f.c, window)
		t1 := time.Now()
		perMin := func(x float64) float64 { return x / n / window.Minutes() }
		b.ReportMetric(perMin(with-base), "req/agent/min")
		events, err := f.c.Audit()
		if err != nil {
			b.Fatal(err)
		}
		user := "system:serviceaccount:" + f.ns + ":"
		verbs := map[string]int{}
		audited := kube.CountAudit(events, func(e kube.AuditEvent) bool {
			ok := strings.HasPrefix(e.User, user) && !e.Received.Before(t0) && e.Received.Before(t1)
			if ok {
				verbs[e.Verb+" "+e.Resource]++
			}
			return ok
		})
		b.ReportMetric(perMin(float64(audited)), "audit-req/agent/min")
		b.Logf("agents' requests in %s (audit): %v; renew 5s = %.0f per agent per minute", window, verbs, time.Minute.Seconds()/5)
		var rss []float64
		for _, a := range f.agents {
			kib, err := statusKiB(a.cmd.Process.Pid, "VmRSS:")
			if err != nil {
				b.Fatal(err)
			}
			rss = append(rss, float64(kib)/1024)
		}
		slices.Sort(rss)
		b.ReportMetric(rss[len(rss)/2], "rss-MiB")
		for _, a := range f.agents {
			a.stop()
		}
	}
	b.ReportMetric(0, "ns/op")
}

// measure returns the API server's requests over d, by its own counter.
func measure(b *testing.B, c *kube.Cluster, d time.Duration) float64 {
	ctx := context.Background()
	r0, err := c.Requests(ctx)
	if err != nil {
		b.Fatal(err)
	}
	time.Sleep(d)
	r1, err := c.Requests(ctx)
	if err != nil {
		b.Fatal(err)
	}
	return r1.Sub(r0).Sum(nil)
}

// BenchmarkFleetHalt: ten agents, each with a fault in place; `chaoscron fleet halt` →
// the last of the ten faults reverted (its ended_at in its journal).
func BenchmarkFleetHalt(b *testing.B) {
	const n = 10
	f := newFleetRunOf(b, n, fleetOpts{maxSlot: n, dur: time.Hour, schedule: "@every 1s", renew: 5 * time.Second, stale: 30 * time.Second})
	var ds []time.Duration
	for range b.N {
		eventually(b, 60*time.Second, "ten faults in place", func() bool { return len(f.status().Slots) == n })
		halted := time.Now()
		f.ctl("halt", "--reason", "bench")
		eventually(b, 30*time.Second, "every fault reverted", func() bool { return openRuns(f.runs()) == 0 })
		last, k := abortedAfter(f.runs(), "fleet halted by")
		if k != n {
			b.Fatalf("%d of %d agents' faults ended by the halt", k, n)
		}
		ds = append(ds, last.Sub(halted))
		// Older halts' runs stay in the journals; the next round's last is later still.
		f.ctl("resume")
	}
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2])/1e6, "p50-ms")
	b.ReportMetric(float64(ds[len(ds)-1])/1e6, "max-ms")
	b.ReportMetric(0, "ns/op")
}

// statusKiB reads a kB field of /proc/<pid>/status.
func statusKiB(pid int, field string) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, os.ErrNotExist
}
