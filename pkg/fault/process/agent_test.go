package process

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/internal/testenv"
	"github.com/chaoscron/chaoscron/pkg/fault"
)

// agentBuild is the real agent binary, built once per test binary (TestMain removes it).
var agentBuild struct {
	once sync.Once
	dir  string
	path string
	out  string
	err  error
}

// agentBinary builds the real chaoscron agent, installed under another name (chaoscron-v2):
// it must be recognised by what it is, not by what it is called.
func agentBinary(t testing.TB) string {
	t.Helper()
	goTool := testenv.Tool(t, "go")
	b := &agentBuild
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "chaoscron-process-test"); b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "chaoscron-v2")
		out, err := exec.Command(goTool, "build", "-o", b.path, agentPackage).CombinedOutput()
		b.out, b.err = string(out), err
	})
	if b.err != nil {
		t.Fatalf("build the agent: %v\n%s", b.err, b.out)
	}
	return b.path
}

// runAgent starts the real agent binary (`run` with no experiments: it touches nothing) as a
// child of the test.
func runAgent(t testing.TB, bin string) *exec.Cmd {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "chaoscron.yaml")
	yaml := fmt.Sprintf("agent: {listen: \"off\"}\njournal: {path: %s/j.db}\nexperiments: []\n", dir)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return start(t, exec.Command(bin, "run", "-c", cfg))
}

// impostor starts `sleep 300` under argv[0] "chaoscron" (bash's exec -a), and waits until the
// exec is done.
func impostor(t testing.TB) *exec.Cmd {
	t.Helper()
	bash := testenv.Tool(t, "bash")
	cmd := start(t, exec.Command(bash, "-c", "exec -a chaoscron "+sleepPath(t)+" 300"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		argv, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", cmd.Process.Pid))
		if strings.HasPrefix(string(argv), "chaoscron\x00300") {
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d: command line %q, want chaoscron 300", cmd.Process.Pid, argv)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func pidfileOf(t testing.TB, cmd *exec.Cmd) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x.pid")
	if err := os.WriteFile(p, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAgentsByExecutable: another chaoscron is known by its executable's build info, whatever
// it is called, and a process called chaoscron is not protected for its name. Only Plan runs:
// nothing is signalled.
func TestAgentsByExecutable(t *testing.T) {
	bin := agentBinary(t)
	env := agentEnv(t)

	t.Run("an agent installed as chaoscron-v2", func(t *testing.T) {
		agent := runAgent(t, bin)
		_, err := newFault(t, fault.Params{"pidfile": pidfileOf(t, agent), "action": "stop"}, env).Plan(context.Background(), "r")
		want := fmt.Sprintf("pid %d (chaoscron-v2): a chaoscron process", agent.Process.Pid)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Plan: %v; want no match, saying %q", err, want)
		}
	})

	dir := t.TempDir()
	copied := filepath.Join(dir, "chaoscron")
	data, err := os.ReadFile(sleepPath(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(copied, data, 0o755); err != nil {
		t.Fatal(err)
	}
	test, _ := helper(t, "ignore-term") // this test binary: a Go program of the module, not the agent
	for _, tc := range []struct {
		desc string
		cmd  *exec.Cmd
	}{
		{"exec -a chaoscron sleep", impostor(t)},
		{"sleep installed as chaoscron", start(t, exec.Command(copied, "300"))},
		{"a test binary of the module", test},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			plan := planOurs(t, newFault(t, fault.Params{"pidfile": pidfileOf(t, tc.cmd), "action": "stop"}, env), tc.cmd)
			if pids := targetPids(t, plan); len(pids) != 1 {
				t.Fatalf("plan %s: want pid %d, an ordinary process", plan, tc.cmd.Process.Pid)
			}
		})
	}
}
