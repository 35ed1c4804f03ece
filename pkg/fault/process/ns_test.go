package process

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/internal/testenv"
	"github.com/chaoscron/chaoscron/pkg/fault"
)

// nsEnv marks the test binary running as PID 1 of a fresh pid namespace; nsAgentBin tells it
// where the real agent binary is.
const (
	nsEnv      = "CHAOSCRON_PROCESS_TEST_NS"
	nsAgentBin = "CHAOSCRON_PROCESS_TEST_AGENT_BIN"
)

// TestSelfProtectionInNS runs the broadest fault there is, cmdline ".*" with count all, as a
// real agent process inside a fresh pid namespace with its own /proc, where everything it can
// see and signal belongs to the test:
//
//	PID 1         this test binary (init of the namespace), the agent's parent
//	├── agent     the test binary as the agent: Plan + Inject with Env.Self = itself
//	│   └── sleep the agent's own child
//	├── sleep ×3  the intended targets
//	├── sleep     an intended target too, though argv[0] is chaoscron (exec -a)
//	├── chaoscron-v2 another chaoscron: the real agent binary under another name
//	└── sleep 301 protected by agent.protect
//
// Only the four intended targets may die.
func TestSelfProtectionInNS(t *testing.T) {
	if os.Getenv(nsEnv) == "pid1" {
		nsInit(t)
		return
	}
	testenv.Root(t)
	unshare := testenv.Tool(t, "unshare")
	bin := agentBinary(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, unshare, "--pid", "--fork", "--mount-proc", "--kill-child",
		exe, "-test.run=^TestSelfProtectionInNS$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), nsEnv+"=pid1", nsAgentBin+"="+bin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	t.Logf("inside the namespace:\n%s", out)
	if err != nil && strings.Contains(string(out), "unshare failed") {
		testenv.Require(t, false, "unshare cannot make a pid namespace here: "+strings.TrimSpace(string(out)))
	}
	if err != nil {
		t.Fatalf("inside the namespace: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: TestSelfProtectionInNS") {
		t.Fatal("the test did not pass inside the namespace")
	}
}

// nsReport is what the agent tells PID 1.
type nsReport struct {
	Self, Parent, Child int
	Plan, Undo          json.RawMessage
	Err                 string
}

func nsInit(t *testing.T) {
	if os.Getpid() != 1 {
		t.Fatalf("pid %d: want to be PID 1 of a new pid namespace", os.Getpid())
	}
	sleep := sleepPath(t)
	var targets []*exec.Cmd
	for range 3 {
		targets = append(targets, start(t, exec.Command(sleep, "300")))
	}
	targets = append(targets, impostor(t))
	other := runAgent(t, os.Getenv(nsAgentBin))
	protected := start(t, exec.Command(sleep, "301"))

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	agent := exec.Command(exe, "-test.run=^$")
	agent.Env = append(os.Environ(), helperEnv+"=ns-agent")
	stdin, err := agent.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := agent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	agent.Stderr = os.Stderr
	start(t, agent)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("no report from the agent: %v", err)
	}
	var r nsReport
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatalf("report %q: %v", line, err)
	}
	t.Logf("agent %d (parent %d, child %d)\nplan %s\nundo %s", r.Self, r.Parent, r.Child, r.Plan, r.Undo)
	if r.Err != "" {
		t.Fatalf("agent: %s", r.Err)
	}
	if r.Self != agent.Process.Pid || r.Parent != 1 {
		t.Fatalf("agent reports pid %d, parent %d; want %d, 1", r.Self, r.Parent, agent.Process.Pid)
	}

	var want []int
	for _, c := range targets {
		want = append(want, c.Process.Pid)
	}
	if got := targetPids(t, fault.Undo(r.Plan)); !slices.Equal(got, want) {
		t.Errorf("planned targets %v, want exactly the four sleeps %v", got, want)
	}
	for _, tg := range decode(t, fault.Undo(r.Undo)).Targets {
		if tg.Result != resultEnded || tg.Signal != "SIGTERM" {
			t.Errorf("target %+v: want ended by SIGTERM", tg)
		}
	}
	for _, c := range targets {
		if sig := endedBy(t, c); sig != syscall.SIGTERM {
			t.Errorf("target %d ended by %v, want SIGTERM", c.Process.Pid, sig)
		}
	}
	for what, pid := range map[string]int{
		"the agent":                  r.Self,
		"the agent's child":          r.Child,
		"the chaoscron process":      other.Process.Pid,
		"the protected process":      protected.Process.Pid,
		"PID 1 (the agent's parent)": 1,
	} {
		if s := procState(t, pid); s != 'S' && s != 'R' {
			t.Errorf("%s (pid %d) is in state %c: it must not have been touched", what, pid, s)
		}
	}

	_ = stdin.Close() // the agent's cue to finish
	if err := agent.Wait(); err != nil {
		t.Errorf("agent: %v", err)
	}
}

// nsAgent is the agent inside the namespace: it starts a child of its own, then plans and
// injects a kill of everything, reports, and waits for PID 1 to finish looking.
func nsAgent() {
	r := nsReport{Self: os.Getpid(), Parent: os.Getppid()}
	report := func() {
		b, _ := json.Marshal(r)
		fmt.Println(string(b))
	}
	child := exec.Command("sleep", "300")
	child.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := child.Start(); err != nil {
		r.Err = err.Error()
		report()
		os.Exit(1)
	}
	r.Child = child.Process.Pid
	defer func() {
		_ = child.Process.Kill()
		_ = child.Wait()
	}()

	env := fault.Env{Self: os.Getpid(), Protect: []*regexp.Regexp{regexp.MustCompile(`sleep 301$`)}}
	f, err := fault.New("process", fault.Params{"cmdline": ".*", "count": "all", "grace": "2s"}, env)
	if err == nil {
		ctx := context.Background()
		if r.Plan, err = f.Plan(ctx, "ns"); err == nil {
			r.Undo, err = f.Inject(ctx, r.Plan)
		}
	}
	if err != nil {
		r.Err = err.Error()
	}
	report()
	_, _ = io.Copy(io.Discard, os.Stdin)
}
