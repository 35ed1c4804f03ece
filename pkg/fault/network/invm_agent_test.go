package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/internal/testenv"
)

// The agent end to end, inside the VM: cmd/chaoscron built by TestVM (CHAOSCRON_BIN), its
// CLI and journal as users see them, netem on lo read back with iproute2's tc.
//
// On lo a delay applies twice per round trip (the request and the reply both leave by lo).

const loEcho = "127.0.0.1:9500"

func agentBin(t *testing.T) string {
	t.Helper()
	requireVM(t)
	bin := os.Getenv("CHAOSCRON_BIN")
	testenv.Require(t, bin != "", "agent binary not built: "+os.Getenv("CHAOSCRON_BIN_ERROR"))
	return bin
}

type agent struct {
	bin, dir, journal string
}

func newAgent(t *testing.T) *agent {
	return &agent{bin: agentBin(t), dir: t.TempDir(), journal: filepath.Join(t.TempDir(), "journal.db")}
}

// config writes a config with one experiment, "lat", and returns its path.
func (a *agent) config(t *testing.T, name, schedule, duration string) string {
	t.Helper()
	p := filepath.Join(a.dir, name+".yaml")
	cfg := fmt.Sprintf(`agent:
  listen: "127.0.0.1:8000"
journal:
  path: %s
experiments:
  - name: lat
    schedule: "%s"
    probability: 1
    duration: %s
    fault:
      type: network
      interfaces: [lo]
      delay: 100ms
`, a.journal, schedule, duration)
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// start starts the agent with args; its output goes to a log file shown on failure.
func (a *agent) start(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	logf, err := os.Create(filepath.Join(a.dir, fmt.Sprintf("agent-%d.log", time.Now().UnixNano())))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(a.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("agent %v:\n%s", args, b)
		}
	})
	return cmd
}

// run runs the agent to completion and returns its exit code and output.
func (a *agent) run(t *testing.T, args ...string) (int, string) {
	t.Helper()
	out, err := exec.Command(a.bin, args...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("%v: %v", args, err)
	return 0, ""
}

type journalRecord struct {
	ID         uint64          `json:"id"`
	Experiment string          `json:"experiment"`
	Fault      string          `json:"fault"`
	Trigger    string          `json:"trigger"`
	Status     string          `json:"status"`
	Cleanup    string          `json:"cleanup"`
	Reason     string          `json:"reason"`
	Error      string          `json:"error"`
	Undo       json.RawMessage `json:"undo"`
}

func (a *agent) records(t *testing.T) []journalRecord {
	t.Helper()
	out, err := exec.Command(a.bin, "journal", "list", "-o", "json", "--journal", a.journal).Output()
	if err != nil {
		t.Fatalf("journal list: %v\n%s", err, out)
	}
	var recs []journalRecord
	if err := json.Unmarshal(out, &recs); err != nil {
		t.Fatalf("journal list: %v\n%s", err, out)
	}
	return recs
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func loFaulted(t *testing.T) bool {
	return strings.Contains(sh(t, "$TC qdisc show dev lo"), "qdisc netem c4a1:")
}

func sigterm(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("agent after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("agent did not stop on SIGTERM")
	}
}

// fire: the fault appears with its parameters, round trips rise by the delay, and after the
// duration it is gone and round trips are back.
func TestInVMAgentFire(t *testing.T) {
	a := newAgent(t)
	echoServer(t, loEcho)
	base := rtt(t, "", loEcho, 5)
	cfg := a.config(t, "fire", "@every 1h", "5s")
	cmd := a.start(t, "fire", "-c", cfg, "lat")
	waitFor(t, 20*time.Second, "netem on lo", func() bool { return loFaulted(t) })
	wantLines(t, "tc qdisc show dev lo", sh(t, "$TC qdisc show dev lo"),
		"qdisc prio c4a0: root", "qdisc netem c4a1: parent c4a0:2 limit 1000 delay 100ms")
	faulted := rtt(t, "", loEcho, 5)
	t.Logf("measure: agent fire, delay 100ms on lo: round trip %s before, %s during (+%s; lo delays both ways)", base, faulted, faulted-base)
	if d := faulted - base; d < 190*time.Millisecond || d > 320*time.Millisecond {
		t.Errorf("round trip rose by %s, want about 200ms", d)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("fire: %v", err)
	}
	if loFaulted(t) {
		t.Fatal("netem still on lo after the run ended")
	}
	after := rtt(t, "", loEcho, 5)
	t.Logf("measure: after the duration: round trip %s", after)
	if after > base+20*time.Millisecond {
		t.Errorf("round trip %s after the run, %s before", after, base)
	}
	recs := a.records(t)
	if len(recs) != 1 || recs[0].Status != "succeeded" || recs[0].Cleanup != "done" {
		t.Errorf("journal: %+v", recs)
	}
}

// kill -9 while the fault is in place: it stays (nothing else could remove it), and the next
// agent start removes it: from the journal (recover, run), or by sweeping when the journal
// file is gone.
func TestInVMAgentCrash(t *testing.T) {
	a := newAgent(t)
	echoServer(t, loEcho)
	base := rtt(t, "", loEcho, 5)
	fast := a.config(t, "fast", "@every 1s", "120s")
	slow := a.config(t, "slow", "@every 1h", "120s") // starts, recovers, fires nothing

	crash := func(step string) {
		t.Helper()
		cmd := a.start(t, "run", "-c", fast)
		waitFor(t, 30*time.Second, "netem on lo", func() bool { return loFaulted(t) })
		if step == "recover" {
			// The agent's own port is excluded by default: connecting to it (SYN out, SYN-ACK
			// back, both on lo) is not delayed, while the UDP echo is.
			wantLines(t, "tc filter show dev lo", sh(t, "$TC filter show dev lo"),
				"match 1f400000/ffff0000 at 20", "match 00001f40/0000ffff at 20", "flowid c4a0:1")
			var connects []time.Duration
			for range 3 {
				start := time.Now()
				c, err := net.DialTimeout("tcp", "127.0.0.1:8000", 5*time.Second)
				if err != nil {
					t.Fatalf("connect to the agent's port: %v", err)
				}
				connects = append(connects, time.Since(start))
				c.Close()
			}
			slices.Sort(connects)
			start := time.Now()
			resp, err := http.Get("http://127.0.0.1:8000/metrics")
			if err != nil {
				t.Fatalf("metrics: %v", err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			t.Logf("measure: during the fault: TCP connect to the agent's port %s (median of 3), GET /metrics %s, UDP echo round trip %s",
				connects[1], time.Since(start), rtt(t, "", loEcho, 3))
			if connects[1] > 100*time.Millisecond { // half of what a delayed handshake takes
				t.Errorf("connecting to the agent's port took %s during the fault: it was delayed", connects[1])
			}
		}
		_ = cmd.Process.Kill() // SIGKILL: no chance to clean up
		_ = cmd.Wait()
		if !loFaulted(t) {
			t.Fatalf("%s: netem gone after kill -9: who removed it?", step)
		}
		if d := rtt(t, "", loEcho, 3); d < base+150*time.Millisecond {
			t.Errorf("%s: round trip %s with the dangling fault", step, d)
		}
	}
	back := func(step string) {
		t.Helper()
		if loFaulted(t) {
			t.Fatalf("%s: netem still on lo", step)
		}
		d := rtt(t, "", loEcho, 5)
		t.Logf("measure: %s: round trip %s (before any fault: %s)", step, d, base)
		if d > base+20*time.Millisecond {
			t.Errorf("%s: round trip %s", step, d)
		}
	}
	recovered := func() int {
		n := 0
		for _, r := range a.records(t) {
			if r.Cleanup == "recovered" && r.Trigger != "sweep" {
				n++
			}
		}
		return n
	}

	// 1. chaoscron recover.
	crash("recover")
	if rc, out := a.run(t, "recover", "-c", fast, "--journal", a.journal); rc != 0 {
		t.Fatalf("recover: exit %d\n%s", rc, out)
	}
	back("after chaoscron recover")
	if n := recovered(); n != 1 {
		t.Errorf("records with cleanup recovered: %d, want 1\n%+v", n, a.records(t))
	}

	// 2. chaoscron run: recovery before anything fires.
	crash("run")
	cmd := a.start(t, "run", "-c", slow)
	waitFor(t, 20*time.Second, "recovery by the restarted agent", func() bool { return !loFaulted(t) })
	sigterm(t, cmd)
	back("after the agent restarted")
	if n := recovered(); n != 2 {
		t.Errorf("records with cleanup recovered: %d, want 2", n)
	}

	// 3. The journal file is gone: only the sweep can find the fault.
	crash("sweep")
	if err := os.Remove(a.journal); err != nil {
		t.Fatal(err)
	}
	cmd = a.start(t, "run", "-c", slow)
	waitFor(t, 20*time.Second, "the sweep", func() bool { return !loFaulted(t) })
	sigterm(t, cmd)
	back("after the sweep")
	recs := a.records(t)
	if !slices.ContainsFunc(recs, func(r journalRecord) bool {
		return strings.Contains(r.Reason, "removed prio c4a0: on lo")
	}) {
		t.Errorf("no record of the sweep: %+v", recs)
	}
	for _, r := range recs {
		t.Logf("journal: id %d %s status %s cleanup %s trigger %s %s", r.ID, r.Experiment, r.Status, r.Cleanup, r.Trigger, r.Reason)
	}
}

// A root qdisc chaoscron did not create is refused, and left exactly as it was by the
// failed run, by recovery and by the sweep.
func TestInVMAgentForeignRoot(t *testing.T) {
	a := newAgent(t)
	sh(t, "$TC qdisc add dev lo root handle 1: tbf rate 1gbit burst 128kb latency 50ms")
	t.Cleanup(func() { _, _ = shErr(t, "", "$TC qdisc del dev lo root") })
	before := sh(t, "$TC qdisc show dev lo")
	cfg := a.config(t, "foreign", "@every 1h", "2s")
	rc, out := a.run(t, "fire", "-c", cfg, "lat")
	if rc == 0 || !strings.Contains(out, ErrForeignRoot.Error()) {
		t.Errorf("fire over a tbf: exit %d\n%s", rc, out)
	}
	if rc, out := a.run(t, "recover", "-c", cfg, "--journal", a.journal); rc != 0 {
		t.Errorf("recover: exit %d\n%s", rc, out)
	}
	if after := sh(t, "$TC qdisc show dev lo"); after != before {
		t.Errorf("tbf changed:\nbefore %s\nafter  %s", before, after)
	}
	recs := a.records(t)
	if len(recs) != 1 || recs[0].Status != "failed" || !strings.Contains(recs[0].Error, "tbf 1:") {
		t.Errorf("journal: %+v", recs)
	}
}
