package process

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

// These tests signal real processes on a machine others share, as root. Every process a test
// signals is one it started itself: each target has a unique name or argument, and
// onlyOurs checks every plan against the test's own children before Inject may run.

// helperEnv makes the test binary act as a helper process instead of running tests.
const helperEnv = "CHAOSCRON_PROCESS_TEST_HELPER"

// helperLifetime: a helper that outlives its test (a crash) ends itself.
const helperLifetime = 2 * time.Minute

func TestMain(m *testing.M) {
	switch mode := os.Getenv(helperEnv); mode {
	case "":
		code := m.Run()
		if agentBuild.dir != "" {
			os.RemoveAll(agentBuild.dir)
		}
		os.Exit(code)
	case "listen":
		// Listens on a free loopback port and prints it.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	case "ignore-term":
		// Ignores SIGTERM: only SIGKILL ends it.
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
	case "ns-agent":
		nsAgent()
		return
	default:
		fmt.Println("unknown helper mode", mode)
		os.Exit(2)
	}
	time.Sleep(helperLifetime)
	os.Exit(0)
}

func unique(t testing.TB) string {
	t.Helper()
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func sleepPath(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep on PATH")
	}
	if p, err = filepath.EvalSymlinks(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// start starts a child that dies with the test process (Pdeathsig) and is killed and reaped
// when the test ends.
func start(t testing.TB, cmd *exec.Cmd) *exec.Cmd {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // our own child; a no-op once it has been waited for
		_ = cmd.Wait()
	})
	return cmd
}

// namedSleep starts `sleep 300` under a unique process name ("cc" + 6 hex digits, so comm
// and argv[0] agree) and returns the child and the name.
func namedSleep(t testing.TB, dir, name string) *exec.Cmd {
	t.Helper()
	link := filepath.Join(dir, name)
	if _, err := os.Lstat(link); err != nil {
		if err := os.Symlink(sleepPath(t), link); err != nil {
			t.Fatal(err)
		}
	}
	return start(t, exec.Command(link, "300"))
}

// helper starts the test binary in a helper mode and returns it with its first output line.
func helper(t testing.TB, mode string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, append([]string{"-test.run=^$"}, args...)...)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start(t, cmd)
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	select {
	case s := <-line:
		if s == "" || strings.HasPrefix(s, "error") {
			t.Fatalf("helper %s: %q", mode, s)
		}
		return cmd, s
	case <-time.After(10 * time.Second):
		t.Fatalf("helper %s did not start", mode)
	}
	return nil, ""
}

// agentEnv is an Env whose agent (Self) is a stand-in child of the test. The real agent
// protects its descendants, and every target here is a child of the test process; with the
// stand-in as Self, the test process is the agent's parent instead, so it stays protected.
func agentEnv(t testing.TB) fault.Env {
	t.Helper()
	standIn := start(t, exec.Command(sleepPath(t), "300"))
	return fault.Env{Self: standIn.Process.Pid}
}

func newFault(t testing.TB, p fault.Params, env fault.Env) fault.Fault {
	t.Helper()
	f, err := fault.New("process", p, env)
	if err != nil {
		t.Fatalf("New(%v): %v", p, err)
	}
	return f
}

func decode(t testing.TB, raw fault.Undo) undo {
	t.Helper()
	u, err := decodeUndo(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func targetPids(t testing.TB, raw fault.Undo) []int {
	t.Helper()
	var pids []int
	for _, tg := range decode(t, raw).Targets {
		pids = append(pids, tg.Pid)
	}
	return pids
}

// onlyOurs fails the test, before anything is signalled, unless every target of plan is one
// of cmds.
func onlyOurs(t testing.TB, plan fault.Undo, cmds ...*exec.Cmd) {
	t.Helper()
	var ours []int
	for _, c := range cmds {
		ours = append(ours, c.Process.Pid)
	}
	for _, pid := range targetPids(t, plan) {
		if !slices.Contains(ours, pid) {
			t.Fatalf("plan %s targets pid %d, which this test did not start: not injecting", plan, pid)
		}
	}
}

// planOurs plans and checks the plan with onlyOurs.
func planOurs(t testing.TB, f fault.Fault, cmds ...*exec.Cmd) fault.Undo {
	t.Helper()
	plan, err := f.Plan(context.Background(), "run-"+t.Name())
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	onlyOurs(t, plan, cmds...)
	return plan
}

func procState(t testing.TB, pid int) byte {
	t.Helper()
	st, err := readStat("/proc", pid)
	if err != nil {
		return 'X'
	}
	return st.state
}

// waitState waits until pid is in one of states, and fails the test if it does not get there.
func waitState(t testing.TB, pid int, states string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := procState(t, pid)
		if strings.IndexByte(states, s) >= 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d is in state %c, want one of %q", pid, s, states)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// endedBy waits for our child and returns the signal that ended it.
func endedBy(t testing.TB, cmd *exec.Cmd) syscall.Signal {
	t.Helper()
	_ = cmd.Wait()
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		t.Fatalf("pid %d: %v, want it ended by a signal", cmd.Process.Pid, cmd.ProcessState)
	}
	return ws.Signal()
}

func mustJSON(t testing.TB, v any) fault.Undo {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
