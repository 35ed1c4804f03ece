package cpu

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Benchmarks here measure accuracy, not speed: each iteration burns for a second or two and
// reports the busy share it saw. Run them on purpose, one at a time:
//
//	go test -run '^$' -bench . -benchtime 1x ./pkg/fault/cpu

// BenchmarkPeriod shows how close one worker gets to its target load for several periods;
// it is what defaultPeriod was chosen from.
func BenchmarkPeriod(b *testing.B) {
	for _, period := range []time.Duration{10 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond} {
		for _, load := range []float64{10, 50, 90} {
			b.Run(fmt.Sprintf("period=%v/load=%v", period, load), func(b *testing.B) {
				var sum float64
				for range b.N {
					bn := start(context.Background(), 1, load/100, period)
					// getrusage has nanosecond resolution; /proc/<pid>/stat counts 10 ms ticks.
					sum += busy(b, time.Second)
					bn.stop()
					<-bn.done
				}
				got := 100 * sum / float64(b.N)
				b.ReportMetric(got, "busy%")
				b.ReportMetric(got-load, "error%")
			})
		}
	}
}

// BenchmarkCompare measures two workers at 50% load, this package's and stress-ng's
// (`stress-ng --cpu 2 --cpu-load 50`), the same way: utime+stime from /proc/<pid>/stat over
// two seconds, as a share of one CPU per worker.
func BenchmarkCompare(b *testing.B) {
	const workers, load = 2, 50
	b.Run("chaoscron", func(b *testing.B) {
		var sum, sys float64
		for range b.N {
			bn := start(context.Background(), workers, load/100.0, defaultPeriod)
			time.Sleep(200 * time.Millisecond)
			u, s := procBusy(b, []int{os.Getpid()}, 2*time.Second)
			bn.stop()
			<-bn.done
			sum += u + s
			sys += s
		}
		b.ReportMetric(100*sum/float64(b.N)/workers, "busy%/worker")
		b.ReportMetric(100*sys/float64(b.N)/workers, "sys%/worker")
	})
	b.Run("stress-ng", func(b *testing.B) {
		bin, err := exec.LookPath("stress-ng")
		if err != nil {
			b.Skip("stress-ng not on PATH")
		}
		var sum, sys float64
		for range b.N {
			cmd := exec.Command(bin, "--cpu", strconv.Itoa(workers), "--cpu-load", strconv.Itoa(load), "-t", "3", "--quiet")
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			// Let stress-ng fork its workers and settle.
			time.Sleep(500 * time.Millisecond)
			kids := children(b, cmd.Process.Pid)
			if len(kids) != workers {
				b.Fatalf("stress-ng has %d children (%v); want %d", len(kids), kids, workers)
			}
			u, s := procBusy(b, kids, 2*time.Second)
			if err := cmd.Wait(); err != nil {
				b.Fatal(err)
			}
			sum += u + s
			sys += s
		}
		b.ReportMetric(100*sum/float64(b.N)/workers, "busy%/worker")
		b.ReportMetric(100*sys/float64(b.N)/workers, "sys%/worker")
	})
}

// procBusy returns the user and system CPU time the processes use over d, in CPUs' worth.
func procBusy(b testing.TB, pids []int, d time.Duration) (user, sys float64) {
	b.Helper()
	u0, s0 := procTicks(b, pids)
	w0 := time.Now()
	time.Sleep(d)
	u1, s1 := procTicks(b, pids)
	wall := time.Since(w0).Seconds()
	const hz = 100 // USER_HZ, fixed at 100 in Linux's user-space ABI
	return float64(u1-u0) / hz / wall, float64(s1-s0) / hz / wall
}

// procTicks sums utime and stime (fields 14 and 15 of /proc/<pid>/stat) over pids.
func procTicks(b testing.TB, pids []int) (user, sys int64) {
	b.Helper()
	for _, pid := range pids {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			b.Fatal(err)
		}
		// The command name (field 2) may hold spaces; the fields after it are plain.
		f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
		u, err1 := strconv.ParseInt(f[11], 10, 64)
		s, err2 := strconv.ParseInt(f[12], 10, 64)
		if err1 != nil || err2 != nil {
			b.Fatalf("parse /proc/%d/stat: %q", pid, data)
		}
		user += u
		sys += s
	}
	return user, sys
}

func children(b testing.TB, pid int) []int {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		b.Fatal(err)
	}
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		n, err := strconv.Atoi(f)
		if err != nil {
			b.Fatal(err)
		}
		pids = append(pids, n)
	}
	return pids
}
