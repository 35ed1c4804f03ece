package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/internal/testenv"
	"github.com/chaoscron/chaoscron/journal"
)

// bin is the real chaoscron binary, built once, static, as it ships.
var bin string

func TestMain(m *testing.M) {
	if os.Getenv("CHAOSCRON_FLOOD") != "" { // a helper of the flood test needs no binary
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "chaoscron-e2e")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "chaoscron")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build chaoscron: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cli runs the binary to completion and returns stdout, stderr and the exit code.
func cli(t testing.TB, dir string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	c := exec.Command(bin, args...)
	c.Dir = dir
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// agent is a running `chaoscron run`.
type agent struct {
	t   testing.TB
	cmd *exec.Cmd
	log *testenv.Buffer
}

func startAgent(t *testing.T, dir string, args ...string) *agent {
	t.Helper()
	a := &agent{t: t, log: &testenv.Buffer{}}
	a.cmd = exec.Command(bin, append([]string{"run"}, args...)...)
	a.cmd.Dir = dir
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	testenv.Start(t, a.cmd)
	return a
}

// stop sends SIGTERM and returns the exit code.
func (a *agent) stop() int {
	a.t.Helper()
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	return a.wait(15 * time.Second)
}

// crash sends SIGKILL: nothing in the agent runs after it.
func (a *agent) crash() {
	a.t.Helper()
	_ = a.cmd.Process.Kill()
	a.wait(5 * time.Second)
}

func (a *agent) wait(d time.Duration) int {
	a.t.Helper()
	done := make(chan error, 1)
	go func() { done <- a.cmd.Wait() }()
	select {
	case <-done:
		return a.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		_ = a.cmd.Process.Kill()
		<-done
		a.t.Fatalf("agent did not exit within %v; log:\n%s", d, a.log)
		return -1
	}
}

// eventually polls cond until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func writeConfig(t testing.TB, dir, yaml string) string {
	t.Helper()
	p := filepath.Join(dir, "chaoscron.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func listRuns(t testing.TB, dir string, args ...string) []journal.Record {
	t.Helper()
	out, errs, code := cli(t, dir, append([]string{"journal", "list", "-o", "json"}, args...)...)
	if code != 0 {
		t.Fatalf("journal list: exit %d: %s", code, errs)
	}
	var recs []journal.Record
	if err := json.Unmarshal([]byte(out), &recs); err != nil {
		t.Fatalf("journal list -o json: %v\n%s", err, out)
	}
	return recs
}

func fills(t *testing.T, dir string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, ".chaoscron-fill-*"))
	return m
}

func TestNextSchedule(t *testing.T) {
	out, errs, code := cli(t, t.TempDir(), "next", "--schedule", "*/15 * * * * *", "--from", "2026-01-01T00:00:00Z", "--count", "3", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var got []string
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := []string{"2026-01-01T00:00:15Z", "2026-01-01T00:00:30Z", "2026-01-01T00:00:45Z"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("next = %v, want %v", got, want)
	}
}

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	bad := writeConfig(t, dir, "experiments:\n  - name: x\n    schedule: \"TZ=UTC\"\n    duration: 1s\n    fault: {type: cpu}\n")
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"unknown flag", []string{"run", "--bogus"}, 2, "unknown flag"},
		{"next without input", []string{"next"}, 2, "exactly one of"},
		{"show without id", []string{"journal", "show"}, 2, "accepts 1 arg"},
		{"invalid config", []string{"validate", "-c", bad}, 1, "chaoscron.yaml:3"},
		{"bad schedule", []string{"next", "--schedule", "61 * * * *"}, 1, "--schedule"},
		{"version", []string{"version"}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errs, code := cli(t, dir, tc.args...)
			if code != tc.code || !strings.Contains(out+errs, tc.msg) {
				t.Fatalf("exit %d (want %d), output %q (want it to contain %q)", code, tc.code, out+errs, tc.msg)
			}
		})
	}
}

func TestRunEndToEnd(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`
agent: {listen: "off"}
journal: {path: %s/j.db}
experiments:
  - name: fill
    schedule: "@every 1s"
    probability: 1
    duration: 300ms
    fault: {type: disk, path: %s, size: 1MiB, reserve: 1MiB}
`, dir, dir))
	a := startAgent(t, dir, "-c", cfg)
	time.Sleep(3500 * time.Millisecond)
	if code := a.stop(); code != 0 {
		t.Fatalf("exit %d after SIGTERM; log:\n%s", code, a.log)
	}
	if n := len(fills(t, dir)); n != 0 {
		t.Fatalf("%d fill files left behind", n)
	}
	recs := listRuns(t, dir, "-c", cfg)
	if len(recs) < 2 {
		t.Fatalf("%d runs in 3.5 s of @every 1s, want at least 2; log:\n%s", len(recs), a.log)
	}
	for _, r := range recs {
		// The SIGTERM may land while a run is held: that one ends early, reverted.
		shutdown := r.Status == journal.Aborted && r.Reason == "shutdown"
		if (r.Status != journal.Succeeded && !shutdown) || r.Cleanup != journal.CleanupDone {
			t.Errorf("run %d: status %s cleanup %s (%s%s)", r.ID, r.Status, r.Cleanup, r.Error, r.Reason)
		}
	}
}

// crashTest runs an agent with a long fault, SIGKILLs it while the fault is active, checks
// whether the fault outlived the agent (survives: a file, a qdisc, a stopped process) or died
// with it (a CPU burn: threads of the agent), then starts a second agent and checks it
// closes the run, reverting what is left, before anything fires.
func crashTest(t *testing.T, faultYAML string, survives bool, present func(dir string, a *agent) bool) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`
agent: {listen: "off"}
journal: {path: %s/j.db}
experiments:
  - name: victim
    schedule: "@every 1s"
    duration: 1h
    fault: %s
`, dir, strings.ReplaceAll(faultYAML, "DIR", dir)))
	a := startAgent(t, dir, "-c", cfg)
	eventually(t, 10*time.Second, "the fault to be in place", func() bool { return present(dir, a) })
	// The fault is in place a moment before its run is journaled active (one more fsync);
	// read the live journal through the agent's socket until it is.
	eventually(t, 10*time.Second, "the run to be journaled active", func() bool {
		return len(listRuns(t, dir, "-c", cfg, "--status", "active")) == 1
	})
	a.crash()
	if present(dir, a) != survives {
		t.Fatalf("after SIGKILL the fault is present=%v, want %v", !survives, survives)
	}
	open := listRuns(t, dir, "-c", cfg, "--status", "active")
	if len(open) != 1 || open[0].Cleanup != journal.CleanupPending {
		t.Fatalf("after the crash the journal shows %+v, want one active run with cleanup pending", open)
	}

	b := startAgent(t, dir, "-c", cfg)
	eventually(t, 10*time.Second, "the dangling fault to be reverted", func() bool { return !present(dir, b) })
	time.Sleep(1500 * time.Millisecond) // let the second agent fire at least once
	if code := b.stop(); code != 0 {
		t.Fatalf("second agent exit %d; log:\n%s", code, b.log)
	}
	recs := listRuns(t, dir, "-c", cfg)
	var recovered journal.Record
	for _, r := range recs {
		if r.ID == open[0].ID {
			recovered = r
		}
	}
	if recovered.Cleanup != journal.CleanupRecovered || recovered.Status != journal.Aborted {
		t.Fatalf("crashed run after restart: status %s cleanup %s", recovered.Status, recovered.Cleanup)
	}
	fired := 0
	for _, r := range recs {
		if r.Agent.Instance != recovered.Agent.Instance && r.Trigger == "schedule" {
			fired++
			if r.StartedAt.Before(recovered.EndedAt) {
				t.Fatalf("run %d started at %v, before recovery finished at %v", r.ID, r.StartedAt, recovered.EndedAt)
			}
		}
	}
	if fired == 0 {
		t.Fatalf("the restarted agent never fired; log:\n%s", b.log)
	}
}

func TestCrashDiskFill(t *testing.T) {
	crashTest(t, "{type: disk, path: DIR, size: 4MiB, reserve: 1MiB}", true, func(dir string, _ *agent) bool {
		return len(fills(t, dir)) > 0
	})
}

func TestCrashCPUBurn(t *testing.T) {
	// The burners are threads of the agent: none may survive it. "Present" is the agent
	// burning CPU; after SIGKILL, any process of this binary still alive would be a survivor.
	crashTest(t, "{type: cpu, workers: 1, load: 50}", false, func(dir string, a *agent) bool {
		if a.cmd.ProcessState == nil {
			return strings.Contains(a.log.String(), `"msg":"run active"`) && cpuTicks(a.cmd.Process.Pid) > 5
		}
		return len(processesOf(bin)) > 0
	})
}

// cpuTicks returns a process's utime+stime in clock ticks.
func cpuTicks(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	var u, s int
	fmt.Sscan(f[11], &u)
	fmt.Sscan(f[12], &s)
	return u + s
}

// processesOf lists live pids whose executable is path.
func processesOf(path string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && exe == path {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestRecoverCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`
agent: {listen: "off"}
journal: {path: %s/j.db}
experiments:
  - {name: fill, schedule: "@every 1s", duration: 1h, fault: {type: disk, path: %s, size: 1MiB, reserve: 1MiB}}
`, dir, dir))
	a := startAgent(t, dir, "-c", cfg)
	eventually(t, 10*time.Second, "a fill file", func() bool { return len(fills(t, dir)) > 0 })
	a.crash()
	// recover needs only the journal: the undo holds everything.
	out, errs, code := cli(t, dir, "recover", "--journal", filepath.Join(dir, "j.db"))
	if code != 0 || !strings.Contains(out, "recovered: 1") {
		t.Fatalf("recover: exit %d, %s %s", code, out, errs)
	}
	if n := len(fills(t, dir)); n != 0 {
		t.Fatalf("recover left %d fill files", n)
	}
	recs := listRuns(t, dir, "--journal", filepath.Join(dir, "j.db"))
	if len(recs) != 1 || recs[0].Cleanup != journal.CleanupRecovered {
		t.Fatalf("records after recover: %+v", recs)
	}
}

func TestCorruptJournal(t *testing.T) {
	dir := t.TempDir()
	jp := filepath.Join(dir, "j.db")
	if err := os.WriteFile(jp, bytes.Repeat([]byte("not a journal "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(jp)
	cfg := writeConfig(t, dir, fmt.Sprintf(`
agent: {listen: "off"}
journal: {path: %s}
experiments:
  - {name: fill, schedule: "@every 1s", duration: 1h, fault: {type: disk, path: %s, size: 1MiB, reserve: 1MiB}}
`, jp, dir))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, bin, "run", "-c", cfg)
	out, err := c.CombinedOutput()
	if c.ProcessState == nil || c.ProcessState.ExitCode() != 1 {
		t.Fatalf("run on a corrupt journal: %v, want exit 1; output:\n%s", err, out)
	}
	if !strings.Contains(string(out), jp) {
		t.Fatalf("error does not name the journal file:\n%s", out)
	}
	if n := len(fills(t, dir)); n != 0 {
		t.Fatal("a fault was injected with a corrupt journal")
	}
	after, _ := os.ReadFile(jp)
	if !bytes.Equal(before, after) {
		t.Fatal("the corrupt journal was modified: evidence destroyed")
	}
}

func TestSchedulesValidate(t *testing.T) {
	files, err := filepath.Glob("../../schedules/*.yaml")
	if err != nil || len(files) < 4 {
		t.Fatalf("want at least 4 example schedules, found %d (%v)", len(files), err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			abs, _ := filepath.Abs(f)
			out, errs, code := cli(t, t.TempDir(), "validate", "-c", abs)
			if code != 0 || !strings.Contains(out, ": ok (") {
				t.Fatalf("validate %s: exit %d\n%s%s", f, code, out, errs)
			}
			// Every example must also have upcoming fires.
			out, errs, code = cli(t, t.TempDir(), "next", "-c", abs, "--count", "2", "-o", "json")
			var fires []map[string]any
			if code != 0 || json.Unmarshal([]byte(out), &fires) != nil || len(fires) == 0 {
				t.Fatalf("next -c %s: exit %d\n%s%s", f, code, out, errs)
			}
		})
	}
}

// TestDocsConfigValidate: the YAML examples of the README and docs/configuration.md are
// configs chaoscron accepts (an example that drifted from the schema teaches the wrong thing).
func TestDocsConfigValidate(t *testing.T) {
	// Fleet examples need credentials to validate: a kubeconfig stands in for a cluster.
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", kc)
	for _, doc := range []string{"../../README.md", "../../docs/configuration.md", "../../docs/fleet.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(b, -1)
		if len(blocks) == 0 {
			t.Errorf("%s: no yaml example", doc)
		}
		for i, m := range blocks {
			dir := t.TempDir()
			cfg := writeConfig(t, dir, string(m[1]))
			if out, errs, code := cli(t, dir, "validate", "-c", cfg); code != 0 {
				t.Errorf("%s, yaml example %d: validate exit %d\n%s%s", doc, i+1, code, out, errs)
			}
		}
	}
}

// TestDemo is the newcomer's first minute: `chaoscron run` with no config, then
// `chaoscron journal list` with no flags, in the same directory, shows real runs.
func TestDemo(t *testing.T) {
	dir := t.TempDir()
	a := startAgent(t, dir, "--listen", "127.0.0.1:0")
	eventually(t, 15*time.Second, "a demo run to finish", func() bool {
		return strings.Contains(a.log.String(), `"msg":"run succeeded"`)
	})
	if code := a.stop(); code != 0 {
		t.Fatalf("demo exit %d; log:\n%s", code, a.log)
	}
	recs := listRuns(t, dir)
	if len(recs) == 0 {
		t.Fatal("journal list shows no runs after the demo")
	}
	for _, r := range recs {
		if r.Cleanup != journal.CleanupDone && r.Cleanup != journal.CleanupNone {
			t.Errorf("demo run %d (%s): cleanup %s", r.ID, r.Experiment, r.Cleanup)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "chaoscron.db")); err != nil {
		t.Fatalf("the demo journal is not in the working directory: %v", err)
	}
}
