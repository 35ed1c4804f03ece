package process

import (
	"context"
	"fmt"
	"os/exec"
	"testing"

	"github.com/chaoscron/chaoscron/pkg/fault"
	"github.com/shirou/gopsutil/v4/process"
)

// BenchmarkScanScale shows how Plan's scan grows with the number of processes on the
// machine: `sleep` children are added in steps (500, 1,000, 2,000 more) and, at each step,
// Plan with a name that matches nothing (so it reads every process) is timed.
//
//	go test -run '^$' -bench ScanScale -benchtime 10x ./pkg/fault/process
func BenchmarkScanScale(b *testing.B) {
	dir := b.TempDir()
	name := "cc" + unique(b)
	f := newFault(b, fault.Params{"name": name + "-none"}, agentEnv(b))
	var kids []*exec.Cmd
	for _, extra := range []int{0, 500, 1000, 2000} {
		for len(kids) < extra {
			kids = append(kids, namedSleep(b, dir, name))
		}
		pids, err := process.Pids()
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("extra=%d", extra), func(b *testing.B) {
			for b.Loop() {
				if _, err := f.Plan(context.Background(), "bench"); err == nil {
					b.Fatal("matched")
				}
			}
			b.ReportMetric(float64(len(pids)), "processes")
		})
	}
}
