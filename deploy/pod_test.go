package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chaoscron/chaoscron/internal/testenv"
	"github.com/chaoscron/chaoscron/journal"
)

// TestPodSimulation is a pod without Kubernetes: the test re-runs itself as PID 1 of a new
// pid and network namespace (unshare --pid --fork --net --mount-proc), as a pod's pause
// container is, and inside starts an "app" (sleep, as uid 65534) and the agent (the binary
// the Dockerfile builds, as uid 0 with exactly the capabilities the sidecar manifest grants,
// no_new_privs), like the sidecar with shareProcessNamespace. The agent SIGSTOPs the app,
// is SIGKILLed while the fault is active — the app stays stopped: the fault outlived its
// agent — and a second agent on the same journal directory (the emptyDir) must resume the
// app before it fires anything.
//
// Network faults cannot be exercised here (no netem on the test kernel; the VM harness in
// testdata/ does that). A stopped process is the fault that outlives the agent here.
func TestPodSimulation(t *testing.T) {
	if os.Getenv(podEnvBin) != "" {
		podInside(t)
		return
	}
	requireRoot(t)
	unshare := requireTool(t, "unshare")
	requireTool(t, "setpriv")
	requireTool(t, "sleep")

	// The capabilities the sidecar really gets, from the built manifests.
	var caps []string
	for _, d := range build(t, "base").deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			if c.Name == sidecarName && c.SecurityContext != nil && c.SecurityContext.Capabilities != nil {
				caps = capNames(c.SecurityContext.Capabilities.Add)
			}
		}
	}
	if len(caps) == 0 {
		t.Fatal("no sidecar capabilities in the base build")
	}
	bin := shippedBinary(t)

	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	defer cancel()
	// --kill-child: if unshare dies (the test times out), PID 1 of the namespace dies with
	// it, and the kernel kills everything else in the namespace.
	cmd := exec.CommandContext(ctx, unshare, "--pid", "--fork", "--kill-child", "--net", "--mount-proc",
		os.Args[0], "-test.run=^TestPodSimulation$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(),
		podEnvBin+"="+bin,
		podEnvDir+"="+t.TempDir(),
		podEnvCaps+"="+strings.Join(caps, ","),
	)
	out, err := cmd.CombinedOutput()
	t.Logf("inside the namespaces:\n%s", out)
	if err != nil {
		t.Fatalf("the pod simulation failed: %v", err)
	}
	if !bytes.Contains(out, []byte("--- PASS: TestPodSimulation")) {
		t.Fatal("the pod simulation did not pass inside the namespaces")
	}
}

// Passed from the test to itself inside the namespaces.
const (
	podEnvBin  = "CHAOSCRON_POD_TEST_BIN"
	podEnvDir  = "CHAOSCRON_POD_TEST_DIR"
	podEnvCaps = "CHAOSCRON_POD_TEST_CAPS"
)

// capBits are the capabilities a manifest may name, for setpriv and /proc/<pid>/status.
var capBits = map[string]int{
	"KILL":       unix.CAP_KILL,
	"NET_ADMIN":  unix.CAP_NET_ADMIN,
	"SYS_PTRACE": unix.CAP_SYS_PTRACE,
	"SYS_ADMIN":  unix.CAP_SYS_ADMIN,
}

const appUID = 65534 // nobody: the app runs as another user than the agent, as in the pod

func podInside(t *testing.T) {
	if os.Getpid() != 1 {
		t.Fatalf("not PID 1 of a new pid namespace (pid %d)", os.Getpid())
	}
	bin, dir := os.Getenv(podEnvBin), os.Getenv(podEnvDir)
	caps := strings.Split(os.Getenv(podEnvCaps), ",")
	loUp(t) // so the test can reach the agent's :8000 like the kubelet's probes do

	app := exec.Command("sleep", "1000")
	app.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: appUID, Gid: appUID}}
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = app.Process.Kill(); _ = app.Wait() }()
	appPid := app.Process.Pid

	cfg := filepath.Join(dir, "config.yaml")
	// The journal directory as the container has it: an emptyDir is mode 0777, and the
	// journal lives in a directory of its own in it, which the agent creates 0700.
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	jpath := filepath.Join(dir, "journal", "journal.db")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `
agent:
  listen: ":8000"
journal:
  path: %s
experiments:
  - name: freeze-app
    schedule: "@every 1s"
    duration: 1h
    fault: {type: process, action: stop, name: sleep, count: all}
`, jpath), 0o600); err != nil {
		t.Fatal(err)
	}

	// First agent: the app is stopped, then the agent dies mid-fault.
	a := startPodAgent(t, bin, cfg, caps)
	wantCapEff(t, a, caps)
	waitState(t, appPid, "T", 10*time.Second, a)
	a.kill()
	time.Sleep(300 * time.Millisecond)
	if s := procState(appPid); s != "T" {
		t.Fatalf("after SIGKILL of the agent the app is in state %q, want T: the fault was expected to outlive its agent", s)
	}

	// Second agent, same journal directory: recovery resumes the app before anything fires.
	b := startPodAgent(t, bin, cfg, caps)
	waitState(t, appPid, "S", 10*time.Second, b)
	get(t, "/healthz", http.StatusOK, "", b)
	get(t, "/readyz", http.StatusOK, "", b)
	// The manifest's probes, as the kubelet runs them in the container: no flags, the
	// journal from the environment, the answer over the socket.
	for _, which := range []string{"live", "ready"} {
		probe := exec.Command(bin, "probe", which)
		probe.Env = append(os.Environ(), "CHAOSCRON_JOURNAL__PATH="+jpath)
		if out, err := probe.CombinedOutput(); err != nil || string(out) != "ok\n" {
			t.Fatalf("probe %s: %v: %s", which, err, out)
		}
	}
	get(t, "/metrics", http.StatusOK, `chaos_recoveries_total{failure_type="process",result="ok"} 1`, b)
	waitState(t, appPid, "T", 10*time.Second, b) // and then fires again, as scheduled
	if code := b.stop(); code != 0 {
		t.Fatalf("second agent: exit %d after SIGTERM; log:\n%s", code, b.log)
	}
	if s := procState(appPid); s != "S" {
		t.Fatalf("after the second agent's graceful stop the app is in state %q, want S", s)
	}

	// The journal tells the same story in order: the crashed run closed by recovery, then
	// the second agent's runs, all started after the recovery ended.
	// As in the container: no flags, the journal named by CHAOSCRON_JOURNAL__PATH.
	list := exec.Command(bin, "journal", "list", "-o", "json")
	list.Env = append(os.Environ(), "CHAOSCRON_JOURNAL__PATH="+jpath)
	out, err := list.Output()
	if err != nil {
		t.Fatalf("journal list: %v", err)
	}
	var recs []journal.Record
	if err := json.Unmarshal(out, &recs); err != nil {
		t.Fatalf("journal list -o json: %v\n%s", err, out)
	}
	var recovered *journal.Record
	for i, r := range recs {
		if r.Cleanup == journal.CleanupRecovered {
			if recovered != nil {
				t.Fatalf("two recovered runs: %+v and %+v", *recovered, r)
			}
			recovered = &recs[i]
		}
	}
	if recovered == nil || recovered.Status != journal.Aborted || recovered.EndedAt.IsZero() {
		t.Fatalf("no run closed by recovery (status aborted, cleanup recovered) in %+v", recs)
	}
	fired := 0
	for _, r := range recs {
		if r.Agent.Instance == recovered.Agent.Instance {
			continue
		}
		if r.Trigger != "schedule" {
			t.Errorf("second agent's run %d has trigger %q", r.ID, r.Trigger)
		}
		fired++
		if !r.StartedAt.After(recovered.EndedAt) {
			t.Errorf("second agent's run %d started at %v, not after the recovery ended at %v", r.ID, r.StartedAt, recovered.EndedAt)
		}
		if r.Cleanup != journal.CleanupDone {
			t.Errorf("second agent's run %d: cleanup %s after a graceful stop, want done", r.ID, r.Cleanup)
		}
	}
	if fired == 0 {
		t.Fatalf("the second agent has no runs in the journal: %+v", recs)
	}
	t.Logf("recovered run %d ended %v; the second agent's %d run(s) started after it", recovered.ID, recovered.EndedAt.Format(time.RFC3339Nano), fired)
}

// podAgent is a running chaoscron inside the namespaces.
type podAgent struct {
	t   *testing.T
	cmd *exec.Cmd
	log *testenv.Buffer
}

// startPodAgent runs `chaoscron run -c cfg` as the sidecar runs: uid 0, every capability
// but caps dropped from the bounding set (so uid 0 cannot have them either), none
// inheritable, no_new_privs (allowPrivilegeEscalation: false).
func startPodAgent(t *testing.T, bin, cfg string, caps []string) *podAgent {
	t.Helper()
	bounding := "-all"
	for _, c := range caps {
		if _, ok := capBits[c]; !ok {
			t.Fatalf("capability %s: add it to capBits", c)
		}
		bounding += ",+" + strings.ToLower(c)
	}
	a := &podAgent{t: t, log: &testenv.Buffer{}}
	a.cmd = exec.Command("setpriv", "--no-new-privs", "--inh-caps=-all", "--bounding-set="+bounding, "--",
		bin, "run", "-c", cfg)
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	testenv.Start(t, a.cmd)
	return a
}

func (a *podAgent) kill() {
	_ = a.cmd.Process.Kill()
	_ = a.cmd.Wait()
}

func (a *podAgent) stop() int {
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = a.cmd.Wait(); close(done) }()
	select {
	case <-done:
		return a.cmd.ProcessState.ExitCode()
	case <-time.After(25 * time.Second):
		a.kill()
		<-done
		return -1
	}
}

// wantCapEff checks the agent really runs with exactly caps effective.
func wantCapEff(t *testing.T, a *podAgent, caps []string) {
	t.Helper()
	var want uint64
	for _, c := range caps {
		want |= 1 << capBits[c]
	}
	var got uint64
	deadline := time.Now().Add(5 * time.Second)
	for {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", a.cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		// Until setpriv has exec'd the agent, the process is setpriv with its own sets.
		if bytes.Contains(status, []byte("Name:\tchaoscron")) {
			for line := range strings.SplitSeq(string(status), "\n") {
				if v, ok := strings.CutPrefix(line, "CapEff:\t"); ok {
					got, _ = strconv.ParseUint(v, 16, 64)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not start; log:\n%s", a.log)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got != want {
		t.Fatalf("the agent's effective capabilities are %#x, want %#x (%v)", got, want, caps)
	}
}

// procState is the one-letter state of pid (R, S, T, Z, …), "" if it is gone.
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+3 > len(b) {
		return ""
	}
	return string(b[i+2 : i+3])
}

// waitState polls often: the second agent resumes the app and may stop it again a second
// later, and the test must see the resumed state in between.
func waitState(t *testing.T, pid int, want string, d time.Duration, a *podAgent) {
	t.Helper()
	deadline := time.Now().Add(d)
	for procState(pid) != want {
		if time.Now().After(deadline) {
			t.Fatalf("app (pid %d) in state %q after %v, want %s; agent log:\n%s", pid, procState(pid), d, want, a.log)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// get fetches path from the agent's listener, retrying until it answers code (and body
// contains want) or 10 s pass.
func get(t *testing.T, path string, code int, want string, a *podAgent) {
	t.Helper()
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(10 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		resp, err := c.Get("http://127.0.0.1:8000" + path)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == code && strings.Contains(string(body), want) {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(last) > 4000 { // a whole /metrics page: the chaos_ lines say enough
		lines := slices.DeleteFunc(strings.Split(last, "\n"), func(l string) bool { return !strings.HasPrefix(l, "chaos_") })
		last = strings.Join(lines, "\n")
	}
	t.Fatalf("GET %s: want %d with %q, last got: %s\nagent log:\n%s", path, code, want, last, a.log)
}

// loUp brings up the loopback interface of the new network namespace (it starts down).
func loUp(t *testing.T) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		t.Fatalf("lo flags: %v", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		t.Fatalf("lo up: %v", err)
	}
}
