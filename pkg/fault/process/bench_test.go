package process

import (
	"context"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/pkg/fault"
	psnet "github.com/shirou/gopsutil/v4/net"
	"github.com/shirou/gopsutil/v4/process"
)

// BenchmarkScan measures Plan with about 2,000 more processes on the machine (sleep children
// started in the setup and killed after), against gopsutil's own ways of doing the same:
//
//	go test -run '^$' -bench Scan -benchtime 20x ./pkg/fault/process
func BenchmarkScan(b *testing.B) {
	const extra = 2000
	dir := b.TempDir()
	name := "cc" + unique(b)
	kids := make([]*exec.Cmd, 0, extra)
	setup := time.Now()
	for range extra {
		kids = append(kids, namedSleep(b, dir, name))
	}
	listener, port := helper(b, "listen")
	env := agentEnv(b)
	pids, _ := process.Pids()
	b.Logf("%d processes on the machine (%d started in %v)", len(pids), extra, time.Since(setup).Round(time.Millisecond))

	plan := func(b *testing.B, p fault.Params, want int) {
		f := newFault(b, p, env)
		for b.Loop() {
			raw, err := f.Plan(context.Background(), "bench")
			if want == 0 {
				if err == nil {
					b.Fatal("matched")
				}
				continue
			}
			if err != nil {
				b.Fatal(err)
			}
			if n := len(targetPids(b, raw)); n != want {
				b.Fatalf("%d targets, want %d", n, want)
			}
		}
	}
	b.Run("Plan/no match", func(b *testing.B) { plan(b, fault.Params{"name": name + "-none"}, 0) })
	b.Run("Plan/name, 2000 matches", func(b *testing.B) { plan(b, fault.Params{"name": name, "count": "all"}, len(kids)) })
	b.Run("Plan/cmdline, 2000 matches", func(b *testing.B) { plan(b, fault.Params{"cmdline": name + " 300$", "count": "all"}, len(kids)) })
	b.Run("Plan/port", func(b *testing.B) { plan(b, fault.Params{"port": mustAtoi(b, port)}, 1) })

	b.Run("gopsutil/Processes", func(b *testing.B) {
		for b.Loop() {
			if _, err := process.Processes(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("gopsutil/Pids+CmdlineSlice", func(b *testing.B) {
		process.EnableBootTimeCache(true)
		for b.Loop() {
			pids, err := process.Pids()
			if err != nil {
				b.Fatal(err)
			}
			for _, pid := range pids {
				_, _ = (&process.Process{Pid: pid}).CmdlineSlice()
			}
		}
	})
	b.Run("gopsutil/net.Connections port", func(b *testing.B) {
		want := int32(listener.Process.Pid)
		for b.Loop() {
			conns, err := psnet.Connections("tcp")
			if err != nil {
				b.Fatal(err)
			}
			found := false
			for _, c := range conns {
				if c.Status == "LISTEN" && c.Laddr.Port == uint32(mustAtoi(b, port)) && c.Pid == want {
					found = true
				}
			}
			if !found {
				b.Fatal("listener not found")
			}
		}
	})
}

// BenchmarkKillToReaped measures a SIGKILL fault from the start of Inject until the target
// has been reaped by its parent (the test).
func BenchmarkKillToReaped(b *testing.B) {
	dir := b.TempDir()
	name := "cc" + unique(b)
	env := agentEnv(b)
	f := newFault(b, fault.Params{"name": name, "signal": "KILL"}, env)
	var total time.Duration
	for range b.N {
		target := namedSleep(b, dir, name)
		plan := planOurs(b, f, target)
		start := time.Now()
		if _, err := f.Inject(context.Background(), plan); err != nil {
			b.Fatal(err)
		}
		if sig := endedBy(b, target); sig != syscall.SIGKILL {
			b.Fatalf("ended by %v", sig)
		}
		total += time.Since(start)
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N), "µs-to-reaped/op")
}
