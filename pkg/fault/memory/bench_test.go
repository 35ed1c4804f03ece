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
// Each iteration takes the three measurements in turn, starting one further along each time,
// so that neither load from elsewhere on the machine nor the state in which the measurement
// before leaves the memory favours one of them. Figures are GiB/s:
//   - chaoscron: from the start of Inject until it returns, every page resident and written
//     with the pattern; huge pages, the default;
//   - stress-ng-rss: from starting `stress-ng --vm 1 --vm-bytes 512M --vm-keep` until its
//     processes' RSS holds the size. Without --vm-madvise, stress-ng draws its madvise advice
//     at random for each run: huge pages in some runs, small ones in most;
//   - stress-ng-hugepage-rss: the same with `--vm-madvise hugepage`, which asks for huge pages
//     as the fault does.
//
// The figures do not measure the same work. stress-ng populates its whole mapping first
// (MADV_POPULATE_READ) and writes its pattern afterwards, so its RSS is complete before a byte
// of data is written; the fault's figure includes writing every byte. That flatters stress-ng
// wherever the first write to a page is what costs, as in the development VM, where the first
// write to each small page costs some 15µs. On the other side, stress-ng's figures include
// starting its processes, some 50 ms here.
//
// Where the host takes back memory the guest has freed (free page reporting, as in the
// development VM), the two huge page figures spread widely: memory freed more than about a
// second before costs as much to touch again as small pages do, and huge pages come mostly from
// such memory. Each run then measures a mix of 6–7 GiB/s and 0.3–0.7 GiB/s fills.
func BenchmarkFill(b *testing.B) {
	const size = 512 * mib
	bin, err := exec.LookPath("stress-ng")
	if err != nil {
		b.Skip("stress-ng not installed")
	}
	f := newFault(b, fault.Params{"size": "512MiB"}, fault.Env{})
	var ours, rss, hugeRSS time.Duration
	turns := []func(i int){
		func(i int) {
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
		},
		func(int) { rss += stressNGFill(b, bin, size) },
		func(int) { hugeRSS += stressNGFill(b, bin, size, "--vm-madvise", "hugepage") },
	}
	for i := range b.N {
		for k := range turns {
			turns[(i+k)%len(turns)](i)
		}
	}
	gib := float64(b.N) * size / (1 << 30)
	b.ReportMetric(gib/ours.Seconds(), "chaoscron-GiB/s")
	b.ReportMetric(gib/rss.Seconds(), "stress-ng-rss-GiB/s")
	b.ReportMetric(gib/hugeRSS.Seconds(), "stress-ng-hugepage-rss-GiB/s")
}

// stressNGFill starts `stress-ng --vm 1 --vm-bytes N --vm-keep` with extra arguments and
// returns how long its processes took to hold N bytes resident (95% of it, as stress-ng's own
// code is counted too).
func stressNGFill(b *testing.B, bin string, size int64, extra ...string) time.Duration {
	b.Helper()
	args := append([]string{"--vm", "1", "--vm-bytes", strconv.FormatInt(size, 10), "--vm-keep", "--timeout", "60s"}, extra...)
	cmd := exec.Command(bin, args...)
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
	b.Fatalf("%s did not reach the size in 30s", strings.Join(cmd.Args, " "))
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
