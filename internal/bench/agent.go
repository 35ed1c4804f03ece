package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// agentFigures are measured on the real binary, built as the Dockerfile builds it.
type agentFigures struct {
	binBytes int64
	window   time.Duration
	rssMiB   float64 // median of the samples
	maxMiB   float64
	cpuPct   float64 // of one core, over the window
	ok       bool
}

func (a agentFigures) String() string {
	if !a.ok {
		return "—"
	}
	return fmt.Sprintf("RSS %.1f MiB (max %.1f); CPU %.3f%% of a core", a.rssMiB, a.maxMiB, a.cpuPct)
}

func (a agentFigures) size() string {
	if a.binBytes == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f MB", float64(a.binBytes)/1e6)
}

// idleConfig schedules 20 experiments on 1 January only, so none fires while it is watched;
// metrics are served, as in a pod.
func idleConfig(journal string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "agent: {listen: \"127.0.0.1:0\", log_format: json}\njournal: {path: %q}\nexperiments:\n", journal)
	for i := range 20 {
		fmt.Fprintf(&sb, "  - {name: idle-%02d, schedule: \"%d 0 1 1 *\", duration: 10s, fault: {type: cpu, workers: 1, load: 10}}\n", i, i)
	}
	return sb.String()
}

// measureAgent builds the binary, starts `chaoscron run` with idleConfig and samples its
// VmRSS every second and its CPU time (utime+stime) over CHAOSCRON_BENCH_IDLE (default 20s),
// after 3 s to settle.
func measureAgent(root string, log io.Writer) (agentFigures, error) {
	a := agentFigures{window: 20 * time.Second}
	if s := os.Getenv("CHAOSCRON_BENCH_IDLE"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return a, fmt.Errorf("CHAOSCRON_BENCH_IDLE=%q: %w", s, err)
		}
		a.window = d
	}
	dir, err := os.MkdirTemp("", "chaoscron-bench-agent-")
	if err != nil {
		return a, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "chaoscron")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./cmd/chaoscron")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return a, fmt.Errorf("build: %v: %s", err, out)
	}
	fi, err := os.Stat(bin)
	if err != nil {
		return a, err
	}
	a.binBytes = fi.Size()

	cfg := filepath.Join(dir, "idle.yaml")
	if err := os.WriteFile(cfg, []byte(idleConfig(filepath.Join(dir, "journal.db"))), 0o600); err != nil {
		return a, err
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "run", "-c", cfg)
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return a, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	pid := cmd.Process.Pid
	time.Sleep(3 * time.Second)
	t0, err := cpuTicks(pid)
	if err != nil {
		return a, fmt.Errorf("%v; agent output:\n%s", err, stderr.String())
	}
	w0 := time.Now()
	var rss []float64
	for time.Since(w0) < a.window {
		time.Sleep(time.Second)
		kb, err := vmRSS(pid)
		if err != nil {
			return a, fmt.Errorf("%v; agent output:\n%s", err, stderr.String())
		}
		rss = append(rss, float64(kb)/1024)
	}
	t1, err := cpuTicks(pid)
	if err != nil {
		return a, err
	}
	const hz = 100 // USER_HZ, fixed at 100 in Linux's user-space ABI
	a.cpuPct = 100 * float64(t1-t0) / hz / time.Since(w0).Seconds()
	slices.Sort(rss)
	a.rssMiB, a.maxMiB, a.ok = rss[len(rss)/2], rss[len(rss)-1], true
	fmt.Fprintf(log, "\n## agent: binary %d bytes; idle over %v: RSS samples %v MiB, CPU %.3f%%\n", a.binBytes, a.window, rss, a.cpuPct)
	return a, nil
}

func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// cpuTicks is utime+stime of pid, fields 14 and 15 of /proc/<pid>/stat.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return u + s, nil
}
