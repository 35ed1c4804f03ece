package memory

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

// BenchmarkFill reports how fast the fault makes 512MiB resident, next to stress-ng's vm
// stressor with the same amount on the same machine in the same run:
//
//	go test -run '^$' -bench Fill -benchtime 5x ./pkg/fault/memory
//
// Each iteration takes both measurements in turn, so that load from elsewhere on the machine
// falls on both alike. Figures are GiB/s:
//   - chaoscron: from the start of Inject until it returns, every page resident and written;
//   - stress-ng-rss: from starting `stress-ng --vm 1 --vm-bytes 512M --vm-keep` until its
//     processes' RSS holds the size.
//
// The two do not measure the same work: stress-ng populates its whole mapping first
// (MADV_POPULATE_READ) and writes its pattern afterwards, so its RSS is complete before a byte
// of data is written. That flatters it wherever the first write to a page is what costs, as
// in a virtual machine whose host backs guest memory lazily.
func BenchmarkFill(b *testing.B) {
	const size = 512 * mib
	bin, err := exec.LookPath("stress-ng")
	if err != nil {
		b.Skip("stress-ng not installed")
	}
	f := newFault(b, fault.Params{"size": "512MiB"}, fault.Env{})
	var ours, rss time.Duration
	for i := range b.N {
		plan := mustPlan(b, f, "bench-"+strconv.Itoa(i))
		start := time.Now()
		undo, err := f.Inject(context.Background(), plan)
		ours += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if err := f.Revert(context.Background(), undo); err != nil {
			b.Fatal(err)
		}
		rss += stressNGFill(b, bin, size)
	}
	gib := float64(b.N) * size / (1 << 30)
	b.ReportMetric(gib/ours.Seconds(), "chaoscron-GiB/s")
	b.ReportMetric(gib/rss.Seconds(), "stress-ng-rss-GiB/s")
}

// stressNGFill starts `stress-ng --vm 1 --vm-bytes N --vm-keep` and returns how long its
// processes took to hold N bytes resident (95% of it, as stress-ng's own code is counted too).
func stressNGFill(b *testing.B, bin string, size int64) time.Duration {
	b.Helper()
	cmd := exec.Command(bin, "--vm", "1", "--vm-bytes", strconv.FormatInt(size, 10), "--vm-keep", "--timeout", "60s")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM) // our own child; it stops its workers
		_ = cmd.Wait()
	}()
	for time.Since(start) < 30*time.Second {
		if treeRSS(cmd.Process.Pid) >= size*95/100 {
			return time.Since(start)
		}
		time.Sleep(2 * time.Millisecond)
	}
	b.Fatal("stress-ng did not reach the size in 30s")
	return 0
}

// treeRSS is the resident memory of pid and all its descendants.
func treeRSS(pid int) int64 {
	var rss int64
	if data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "statm")); err == nil {
		if f := strings.Fields(string(data)); len(f) > 1 {
			pages, _ := strconv.ParseInt(f[1], 10, 64)
			rss += pages * int64(pageSize)
		}
	}
	children, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "task", strconv.Itoa(pid), "children"))
	for _, c := range strings.Fields(string(children)) {
		if n, err := strconv.Atoi(c); err == nil {
			rss += treeRSS(n)
		}
	}
	return rss
}
