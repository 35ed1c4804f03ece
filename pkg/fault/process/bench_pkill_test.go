package process

import (
	"context"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

// BenchmarkKillVsPkill starts two targets per iteration and, at the same moment, kills one
// with the fault (Inject, SIGKILL) and the other with `pkill -9 -f NAME`, each timed until its
// target has been reaped by its parent (the test). Running both at once puts the machine's
// load on both alike; ratio is the fault's median over pkill's.
//
//	go test -run '^$' -bench KillVsPkill -benchtime 50x ./pkg/fault/process
func BenchmarkKillVsPkill(b *testing.B) {
	pkill, err := exec.LookPath("pkill")
	if err != nil {
		b.Skip("pkill not on PATH")
	}
	dir := b.TempDir()
	ours, theirs := "cc"+unique(b), "cc"+unique(b)
	f := newFault(b, fault.Params{"name": ours, "signal": "KILL"}, agentEnv(b))
	var a, p []time.Duration
	for range b.N {
		target, other := namedSleep(b, dir, ours), namedSleep(b, dir, theirs)
		plan := planOurs(b, f, target)
		var wg sync.WaitGroup
		wg.Add(2)
		start := time.Now()
		go func() {
			defer wg.Done()
			if out, err := exec.Command(pkill, "-9", "-f", theirs).CombinedOutput(); err != nil {
				b.Errorf("pkill: %v: %s", err, out)
			}
			if sig := endedBy(b, other); sig != syscall.SIGKILL {
				b.Errorf("pkill's target ended by %v", sig)
			}
			p = append(p, time.Since(start))
		}()
		go func() {
			defer wg.Done()
			if _, err := f.Inject(context.Background(), plan); err != nil {
				b.Error(err)
			}
			if sig := endedBy(b, target); sig != syscall.SIGKILL {
				b.Errorf("the fault's target ended by %v", sig)
			}
			a = append(a, time.Since(start))
		}()
		wg.Wait()
		if b.Failed() {
			b.FailNow()
		}
	}
	ma, mp := medianOf(a), medianOf(p)
	b.ReportMetric(float64(ma.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(mp.Microseconds())/1000, "pkill-p50-ms")
	b.ReportMetric(float64(ma)/float64(mp), "ratio")
}

func medianOf(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
