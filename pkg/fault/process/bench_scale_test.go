package process

import (
	"context"
	"fmt"
	"os/exec"
	"syscall"
	"testing"
	"time"

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

// BenchmarkScanMatchAll is BenchmarkScanScale's other extreme: every one of 1,000 `sleep`
// children matches, so every one is also checked for protection, down to whether its
// executable is a chaoscron binary (parsed once per binary, not per process).
//
//	go test -run '^$' -bench ScanMatchAll -benchtime 10x ./pkg/fault/process
func BenchmarkScanMatchAll(b *testing.B) {
	dir := b.TempDir()
	name := "cc" + unique(b)
	f := newFault(b, fault.Params{"name": name}, agentEnv(b))
	const n = 1000
	for range n {
		namedSleep(b, dir, name)
	}
	// CPU time as well as wall time: on a shared machine the wall time is mostly waiting.
	cpu0 := cpuTime(b)
	for b.Loop() {
		if _, err := f.Plan(context.Background(), "bench"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/match")
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N*n), "cpu-ns/match")
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
