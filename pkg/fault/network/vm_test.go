package network

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/internal/testenv"
	"github.com/chaoscron/chaoscron/internal/vm"
)

// TestVM boots the test VM (internal/vm: qemu, the host's Debian kernel, which has netem)
// once, and runs in it, as root, this very test binary's TestInVM* and TestNetns* tests and,
// when cmd/chaoscron builds, the agent end to end (TestInVMAgent*). Each inner test becomes a
// subtest here, so `go test -run TestVM -v` reads like a local run.
//
// The binary is copied into the VM with its shared libraries rather than rebuilt static:
// that costs no second build of the package. The agent is built with CGO_ENABLED=0.
func TestVM(t *testing.T) {
	if inVM() {
		t.Skip("already inside the VM")
	}
	scenario := vm.Scenario{
		Name:    "network",
		Script:  "exec /bin/network.test -test.v -test.count=1 -test.timeout=170s -test.run '^(TestInVM|TestNetns)'",
		Timeout: 180 * time.Second,
	}
	res, took := bootVM(t, scenario)
	sr, ok := res.Scenario("network")
	if !ok {
		t.Fatalf("the scenario did not start:\n%s", res.Output)
	}
	t.Logf("VM: initramfs base built in %s; boot to /init %s; tests %s; whole run %s",
		took.base, res.Boot.Round(time.Millisecond), sr.Took.Round(time.Millisecond), res.Took.Round(time.Millisecond))
	reportInner(t, sr)
}

type vmTimes struct{ base time.Duration }

// bootVM boots the VM with this test binary (and the agent, if it builds) and runs the
// scenarios. It skips (fails under CI) when the machine cannot run the VM.
func bootVM(t testing.TB, scenarios ...vm.Scenario) (*vm.Result, vmTimes) {
	t.Helper()
	host, err := vm.Find()
	testenv.Require(t, err == nil, fmt.Sprint(err))
	base, err := vm.BaseImage(host, vm.DefaultModules)
	if err != nil {
		t.Fatalf("initramfs: %v", err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	extra := vm.NewArchive()
	if err := extra.HostBinary("bin/network.test", self); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{envInVM: "1", "CI": os.Getenv("CI")}
	if bin, err := buildAgent(t); err != nil {
		env["CHAOSCRON_BIN_ERROR"] = err.Error()
	} else {
		extra.HostFile("bin/chaoscron", bin, 0o755)
		env["CHAOSCRON_BIN"] = "/bin/chaoscron"
	}
	opts := vm.Options{Extra: extra, Scenarios: scenarios, Env: env, Timeout: 4 * time.Minute}
	if testing.Verbose() && os.Getenv("CHAOSCRON_VM_CONSOLE") != "" {
		opts.Log = os.Stderr
	}
	res, err := vm.Run(context.Background(), base, opts)
	if err != nil {
		t.Fatalf("VM: %v\n%s", err, res.Output)
	}
	return res, vmTimes{base: base.Took}
}

// buildAgent builds cmd/chaoscron, static, into the test's temp directory.
func buildAgent(t testing.TB) (string, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("no go tool to build the agent: %w", err)
	}
	out := filepath.Join(t.TempDir(), "chaoscron")
	cmd := exec.Command(goTool, "build", "-o", out, "github.com/chaoscron/chaoscron/cmd/chaoscron")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/chaoscron: %v\n%s", err, b)
	}
	return out, nil
}

var resultRE = regexp.MustCompile(`^--- (PASS|FAIL|SKIP): (\S+) \(([0-9.]+)s\)`)

// reportInner turns the inner `go test -v` output into subtests and logs the figures.
func reportInner(t *testing.T, sr vm.ScenarioResult) {
	t.Helper()
	type result struct {
		status, took string
		log          []string
	}
	results := map[string]*result{}
	var order []string
	var cur []string // output since the last top-level result
	sc := bufio.NewScanner(strings.NewReader(sr.Output))
	for sc.Scan() {
		line := sc.Text()
		if m := resultRE.FindStringSubmatch(line); m != nil {
			results[m[2]] = &result{status: m[1], took: m[3], log: cur}
			order = append(order, m[2])
			cur = nil
			continue
		}
		if strings.HasPrefix(line, "=== RUN") || strings.HasPrefix(line, "=== PAUSE") || strings.HasPrefix(line, "=== CONT") {
			continue
		}
		cur = append(cur, line)
	}
	for _, name := range order {
		r := results[name]
		t.Run(name, func(t *testing.T) {
			for _, l := range r.log {
				if r.status == "FAIL" || strings.Contains(l, "measure:") || strings.Contains(l, "swept:") {
					t.Log(strings.TrimSpace(l))
				}
			}
			switch r.status {
			case "FAIL":
				t.Errorf("failed in the VM (%ss)", r.took)
			case "SKIP":
				testenv.Require(t, false, "skipped in the VM: "+strings.Join(r.log, " | "))
			}
		})
	}
	if sr.RC != 0 {
		t.Errorf("test binary in the VM exited %d", sr.RC)
		if len(order) == 0 || t.Failed() {
			t.Logf("output:\n%s", sr.Output)
		}
	}
	if len(order) == 0 {
		t.Errorf("no test ran in the VM:\n%s", sr.Output)
	}
}

// BenchmarkVM runs BenchmarkQdiscAdd inside the VM, where netem exists, and reports its
// figures as metrics (`go test -run '^$' -bench VM`). The VM boots once per process, however
// many times the framework calls this function, and that boot also runs
// BenchmarkVMFireToApplied's scenario.
func BenchmarkVM(b *testing.B) {
	sr := vmBenchScenario(b, "bench")
	re := regexp.MustCompile(`^BenchmarkQdiscAdd/(\S+?)(-\d+)?\s+\d+\s+([0-9.]+) ns/op`)
	for _, line := range strings.Split(sr.Output, "\n") {
		if m := re.FindStringSubmatch(line); m != nil {
			ns, _ := strconv.ParseFloat(m[3], 64)
			b.ReportMetric(ns, strings.ReplaceAll(m[1], "/", "-")+"-ns/op")
			if b.N == 1 {
				b.Logf("in the VM: %s", strings.TrimSpace(line))
			}
		}
	}
}

// BenchmarkVMFireToApplied runs BenchmarkFireToApplied (a fire of the network fault until
// netem is in place, against tc doing the same) inside the VM, in the same boot as
// BenchmarkVM, and reports its metrics under their own names. Absolute times in the VM
// (software emulation) are several times the host's; the ratios are what compare.
func BenchmarkVMFireToApplied(b *testing.B) {
	sr := vmBenchScenario(b, "fire")
	re := regexp.MustCompile(`^BenchmarkFireToApplied(-\d+)?\s+\d+\s+[0-9.]+ ns/op((\s+[0-9.e+-]+ \S+)+)`)
	found := false
	for _, line := range strings.Split(sr.Output, "\n") {
		m := re.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		f := strings.Fields(m[2])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				b.Fatalf("metric %q in %q: %v", f[i+1], line, err)
			}
			b.ReportMetric(v, f[i+1])
			found = true
		}
		if b.N == 1 {
			b.Logf("in the VM: %s", strings.TrimSpace(line))
		}
	}
	if !found {
		b.Fatalf("no figures from BenchmarkFireToApplied in the VM:\n%s", sr.Output)
	}
}

// vmBenchScenario boots the VM once per process for every VM benchmark and returns the named
// scenario's result, failing b if it did not run or failed.
func vmBenchScenario(b *testing.B, name string) vm.ScenarioResult {
	b.Helper()
	if inVM() {
		b.Skip("already inside the VM")
	}
	vmBench.once.Do(func() {
		// A skip or failure inside bootVM ends this goroutine; the others learn of it here.
		defer func() { vmBench.skipped = b.Skipped() }()
		res, _ := bootVM(b, vm.Scenario{
			Name:    "bench",
			Script:  "exec /bin/network.test -test.run '^$' -test.bench '^BenchmarkQdiscAdd$' -test.benchtime=30x",
			Timeout: 150 * time.Second,
		}, vm.Scenario{
			Name:    "fire",
			Script:  "exec /bin/network.test -test.run '^$' -test.bench '^BenchmarkFireToApplied$' -test.benchtime=100x",
			Timeout: 150 * time.Second,
		})
		vmBench.res = res
	})
	if vmBench.skipped {
		b.Skip("the VM cannot run here (see the first VM benchmark)")
	}
	if vmBench.res == nil {
		b.Fatal("the VM did not boot (see the first VM benchmark)")
	}
	sr, ok := vmBench.res.Scenario(name)
	if !ok {
		b.Fatalf("scenario %s did not start in the VM:\n%s", name, vmBench.res.Output)
	}
	if sr.RC != 0 {
		b.Fatalf("scenario %s failed in the VM (exit %d):\n%s", name, sr.RC, sr.Output)
	}
	return sr
}

var vmBench struct {
	once    sync.Once
	res     *vm.Result // nil if the boot failed or skipped
	skipped bool
}
