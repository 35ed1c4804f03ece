package process

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

// injectKill injects plan and returns the undo's only target.
func injectKill(t *testing.T, f fault.Fault, plan fault.Undo) target {
	t.Helper()
	raw, err := f.Inject(context.Background(), plan)
	if err != nil {
		t.Fatalf("Inject: %v (undo %s)", err, raw)
	}
	u := decode(t, raw)
	if len(u.Targets) != 1 {
		t.Fatalf("undo %s: want one target", raw)
	}
	t.Logf("undo: %s", raw)
	return u.Targets[0]
}

func TestKillByName(t *testing.T) {
	dir := t.TempDir()
	name := "cc" + unique(t)
	for _, tc := range []struct {
		desc  string
		match string
	}{
		{"exact", name},
		{"regexp", "/^" + name + "$/"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			target := namedSleep(t, dir, name)
			decoy := namedSleep(t, dir, name+"x") // a longer name: neither exact nor ^…$
			f := newFault(t, fault.Params{"name": tc.match, "grace": "2s"}, agentEnv(t))
			plan := planOurs(t, f, target)
			if got := targetPids(t, plan); len(got) != 1 || got[0] != target.Process.Pid {
				t.Fatalf("plan targets %v, want [%d]", got, target.Process.Pid)
			}
			tg := injectKill(t, f, plan)
			if tg.Result != resultEnded || tg.Signal != "SIGTERM" {
				t.Errorf("target %+v: want ended by SIGTERM", tg)
			}
			if sig := endedBy(t, target); sig != syscall.SIGTERM {
				t.Errorf("sleep ended by %v, want SIGTERM", sig)
			}
			if s := procState(t, decoy.Process.Pid); s != 'S' && s != 'R' {
				t.Errorf("the decoy %s is in state %c: it should not have been touched", name+"x", s)
			}
		})
	}
}

func TestKillByCmdline(t *testing.T) {
	// GNU sleep takes fractions: the argument makes the command line unique.
	arg := fmt.Sprintf("300.%06d", rand.IntN(1e6))
	target := start(t, exec.Command("sleep", arg))
	f := newFault(t, fault.Params{"cmdline": `^sleep ` + regexp.QuoteMeta(arg) + `$`}, agentEnv(t))
	plan := planOurs(t, f, target)
	if u := decode(t, plan); len(u.Targets) != 1 || u.Targets[0].Cmdline != "sleep "+arg {
		t.Fatalf("plan %s: want the one sleep, with its command line", plan)
	}
	tg := injectKill(t, f, plan)
	if tg.Result != resultEnded || tg.Signal != "SIGTERM" {
		t.Errorf("target %+v: want ended by SIGTERM", tg)
	}
	if sig := endedBy(t, target); sig != syscall.SIGTERM {
		t.Errorf("ended by %v, want SIGTERM", sig)
	}
}

func TestKillByPort(t *testing.T) {
	listener, port := helper(t, "listen")
	f := newFault(t, fault.Params{"port": mustAtoi(t, port)}, agentEnv(t))
	plan := planOurs(t, f, listener)
	if got := targetPids(t, plan); len(got) != 1 {
		t.Fatalf("plan targets %v, want the listener %d", got, listener.Process.Pid)
	}
	tg := injectKill(t, f, plan)
	if tg.Result != resultEnded || tg.Signal != "SIGTERM" {
		t.Errorf("target %+v: want ended by SIGTERM", tg)
	}
	if sig := endedBy(t, listener); sig != syscall.SIGTERM {
		t.Errorf("ended by %v, want SIGTERM", sig)
	}
}

func TestKillEscalatesToSIGKILLAfterGrace(t *testing.T) {
	const grace = 300 * time.Millisecond
	marker := "ignores-term-" + unique(t)
	stubborn, _ := helper(t, "ignore-term", marker)
	f := newFault(t, fault.Params{"cmdline": marker, "signal": "TERM", "grace": grace.String()}, agentEnv(t))
	plan := planOurs(t, f, stubborn)
	start := time.Now()
	tg := injectKill(t, f, plan)
	took := time.Since(start)
	if tg.Result != resultEnded || tg.Signal != "SIGKILL" {
		t.Fatalf("target %+v: want ended by SIGKILL", tg)
	}
	if tg.ElapsedMS < float64(grace.Milliseconds()) {
		t.Errorf("elapsed %.1fms, want at least the grace of %v", tg.ElapsedMS, grace)
	}
	if took < grace || took > grace+2*time.Second {
		t.Errorf("Inject took %v, want a little more than the grace of %v", took, grace)
	}
	if sig := endedBy(t, stubborn); sig != syscall.SIGKILL {
		t.Errorf("ended by %v, want SIGKILL", sig)
	}
}

func TestKillWithSIGKILL(t *testing.T) {
	dir := t.TempDir()
	name := "cc" + unique(t)
	target := namedSleep(t, dir, name)
	f := newFault(t, fault.Params{"name": name, "signal": 9}, agentEnv(t))
	tg := injectKill(t, f, planOurs(t, f, target))
	if tg.Result != resultEnded || tg.Signal != "SIGKILL" {
		t.Errorf("target %+v: want ended by SIGKILL", tg)
	}
	if sig := endedBy(t, target); sig != syscall.SIGKILL {
		t.Errorf("ended by %v, want SIGKILL", sig)
	}
}

func TestKillNeverSignalsAReusedPid(t *testing.T) {
	dir := t.TempDir()
	name := "cc" + unique(t)
	target := namedSleep(t, dir, name)
	f := newFault(t, fault.Params{"name": name, "signal": "KILL"}, agentEnv(t))
	u := decode(t, planOurs(t, f, target))
	// As if the planned process had exited and its pid had gone to this one.
	u.Targets[0].StartTicks++
	u.Targets[0].CreateTime -= 60_000
	raw, err := f.Inject(context.Background(), mustJSON(t, u))
	if err != nil {
		t.Fatalf("Inject: %v", err)
	}
	if tg := decode(t, raw).Targets[0]; tg.Result != resultGone || tg.Signal != "" {
		t.Errorf("target %+v: want gone, nothing sent", tg)
	}
	time.Sleep(50 * time.Millisecond)
	if s := procState(t, target.Process.Pid); s != 'S' && s != 'R' {
		t.Fatalf("the process with the reused pid is in state %c: it was signalled", s)
	}
}

func TestKillRevertIsANoop(t *testing.T) {
	f := newFault(t, fault.Params{"name": "x"}, fault.Env{})
	undo := fault.Undo(`{"run":"r","action":"kill","signal":"SIGTERM","grace":"5s","targets":[{"pid":1,"create_time":1,"start_ticks":1,"cmdline":"init","result":"ended","signal":"SIGTERM"}]}`)
	if err := f.Revert(context.Background(), undo); err != nil {
		t.Fatal(err)
	}
}

func mustAtoi(t testing.TB, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestKillLetsAStoppedProcessActOnTheSignal(t *testing.T) {
	name := "cc" + unique(t)
	target := namedSleep(t, t.TempDir(), name)
	if err := target.Process.Signal(syscall.SIGSTOP); err != nil { // our own child
		t.Fatal(err)
	}
	waitState(t, target.Process.Pid, "T")
	f := newFault(t, fault.Params{"name": name, "grace": "5s"}, agentEnv(t))
	tg := injectKill(t, f, planOurs(t, f, target))
	if tg.Result != resultEnded || tg.Signal != "SIGTERM" || tg.ElapsedMS >= 5000 {
		t.Errorf("target %+v: want ended by SIGTERM within the grace period", tg)
	}
	if sig := endedBy(t, target); sig != syscall.SIGTERM {
		t.Errorf("ended by %v, want SIGTERM", sig)
	}
}
