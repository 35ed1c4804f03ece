package process

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

// stoppedSleep starts a uniquely named sleep, plans a stop of it and injects it; it returns
// the child, the fault params and the undo, with the child in state T.
func stoppedSleep(t *testing.T) (*exec.Cmd, fault.Params, fault.Env, fault.Undo) {
	t.Helper()
	name := "cc" + unique(t)
	target := namedSleep(t, t.TempDir(), name)
	params := fault.Params{"name": name, "action": "stop"}
	env := agentEnv(t)
	f := newFault(t, params, env)
	plan := planOurs(t, f, target)
	undo, err := f.Inject(context.Background(), plan)
	if err != nil {
		t.Fatalf("Inject: %v", err)
	}
	t.Cleanup(func() { _ = target.Process.Signal(syscall.SIGCONT) }) // our own child
	if s := procState(t, target.Process.Pid); s != 'T' {
		t.Fatalf("right after Inject the target is in state %c, want T", s)
	}
	return target, params, env, undo
}

func TestStopAndResume(t *testing.T) {
	name := "cc" + unique(t)
	target := namedSleep(t, t.TempDir(), name)
	f := newFault(t, fault.Params{"name": name, "action": "stop"}, agentEnv(t))
	plan := planOurs(t, f, target)

	// Plan decides everything and sends nothing.
	u := decode(t, plan)
	if len(u.Targets) != 1 {
		t.Fatalf("plan %s: want one target", plan)
	}
	tg := u.Targets[0]
	if tg.Pid != target.Process.Pid || tg.CreateTime == 0 || tg.StartTicks == 0 || !strings.HasSuffix(tg.Cmdline, name+" 300") || u.BootID == "" {
		t.Fatalf("plan %s: want pid %d with create time, start ticks, command line and boot id", plan, target.Process.Pid)
	}
	time.Sleep(20 * time.Millisecond)
	if s := procState(t, tg.Pid); s != 'S' {
		t.Fatalf("after Plan the target is in state %c: Plan must not signal", s)
	}

	undo, err := f.Inject(context.Background(), plan)
	if err != nil {
		t.Fatalf("Inject: %v", err)
	}
	t.Logf("undo: %s", undo)
	if r := decode(t, undo).Targets[0].Result; r != resultStopped {
		t.Errorf("result %q, want %q", r, resultStopped)
	}
	if s := procState(t, tg.Pid); s != 'T' {
		t.Fatalf("after Inject the target is in state %c, want T", s)
	}
	if err := f.Revert(context.Background(), undo); err != nil {
		t.Fatalf("Revert: %v", err)
	}
	waitState(t, tg.Pid, "SR")
	// Idempotent.
	if err := f.Revert(context.Background(), undo); err != nil {
		t.Fatalf("second Revert: %v", err)
	}
	waitState(t, tg.Pid, "SR")
}

// After a crash a new agent has only the journal: a fresh Fault value (here built with other
// parameters, as after a config change) and the undo, or even only the plan when the crash
// came between the write-ahead record and Inject's update of it.
func TestResumeAfterACrash(t *testing.T) {
	for _, tc := range []struct {
		name string
		undo func(plan, injected fault.Undo) fault.Undo
	}{
		{"from the undo", func(_, injected fault.Undo) fault.Undo { return injected }},
		{"from the plan alone", func(plan, _ fault.Undo) fault.Undo { return plan }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "cc" + unique(t)
			target := namedSleep(t, t.TempDir(), name)
			f := newFault(t, fault.Params{"name": name, "action": "stop"}, agentEnv(t))
			plan := planOurs(t, f, target)
			injected, err := f.Inject(context.Background(), plan)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = target.Process.Signal(syscall.SIGCONT) })
			waitState(t, target.Process.Pid, "T")

			fresh := newFault(t, fault.Params{"cmdline": "anything else", "action": "stop"}, fault.Env{})
			if err := fresh.Revert(context.Background(), tc.undo(plan, injected)); err != nil {
				t.Fatalf("Revert by a fresh Fault: %v", err)
			}
			waitState(t, target.Process.Pid, "SR")
		})
	}
}

func TestResumeNeverSignalsAnotherProcess(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(u *undo)
		resume bool
	}{
		{"pid reused: other start time", func(u *undo) {
			u.Targets[0].StartTicks += 100
			u.Targets[0].CreateTime -= 1000
		}, false},
		{"pid reused: undo with a create time only", func(u *undo) {
			u.Targets[0].StartTicks = 0
			u.Targets[0].CreateTime -= 60_000
		}, false},
		{"undo with the right create time only", func(u *undo) {
			u.Targets[0].StartTicks = 0
		}, true},
		{"rebooted since", func(u *undo) {
			u.BootID = "00000000-0000-0000-0000-000000000000"
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target, params, env, raw := stoppedSleep(t)
			u := decode(t, raw)
			tc.change(&u)
			f := newFault(t, params, env)
			if err := f.Revert(context.Background(), mustJSON(t, u)); err != nil {
				t.Fatalf("Revert: %v", err)
			}
			if tc.resume {
				waitState(t, target.Process.Pid, "SR")
				return
			}
			time.Sleep(50 * time.Millisecond)
			if s := procState(t, target.Process.Pid); s != 'T' {
				t.Fatalf("the target is in state %c: a process the undo does not name was resumed", s)
			}
		})
	}
	t.Run("undo without any identity", func(t *testing.T) {
		target, params, env, raw := stoppedSleep(t)
		u := decode(t, raw)
		u.Targets[0].StartTicks, u.Targets[0].CreateTime = 0, 0
		if err := newFault(t, params, env).Revert(context.Background(), mustJSON(t, u)); err == nil {
			t.Fatal("Revert of a pid without create time or start ticks succeeded")
		}
		if s := procState(t, target.Process.Pid); s != 'T' {
			t.Fatalf("the target is in state %c", s)
		}
	})
}

func TestResumeOfAnExitedTargetSucceeds(t *testing.T) {
	target, params, env, undo := stoppedSleep(t)
	_ = target.Process.Kill()
	_ = target.Wait()
	if err := newFault(t, params, env).Revert(context.Background(), undo); err != nil {
		t.Fatalf("Revert after the target exited: %v", err)
	}
}

func TestStopLeavesProcessesStoppedBySomeoneElse(t *testing.T) {
	name := "cc" + unique(t)
	target := namedSleep(t, t.TempDir(), name)
	if err := target.Process.Signal(syscall.SIGSTOP); err != nil { // our own child
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = target.Process.Signal(syscall.SIGCONT) })
	waitState(t, target.Process.Pid, "T")
	f := newFault(t, fault.Params{"name": name, "action": "stop"}, agentEnv(t))
	_, err := f.Plan(context.Background(), "r")
	if err == nil || !strings.Contains(err.Error(), "already stopped by someone else") {
		t.Fatalf("Plan: %v; want no match, naming the process already stopped", err)
	}
}

// A target Inject recorded as never stopped (its SIGSTOP refused, say) is not Revert's to
// SIGCONT: here it is stopped by someone else, and must stay stopped.
func TestResumeSkipsTargetsNeverStopped(t *testing.T) {
	target, params, env, undo := stoppedSleep(t)
	var u map[string]any
	if err := json.Unmarshal(undo, &u); err != nil {
		t.Fatal(err)
	}
	ts := u["targets"].([]any)
	ts[0].(map[string]any)["result"] = resultError
	marked, err := json.Marshal(u)
	if err != nil {
		t.Fatal(err)
	}
	if err := newFault(t, params, env).Revert(context.Background(), marked); err != nil {
		t.Fatalf("Revert: %v", err)
	}
	time.Sleep(50 * time.Millisecond)
	if s := procState(t, target.Process.Pid); s != 'T' {
		t.Fatalf("a target recorded as never stopped was resumed (state %c)", s)
	}
	// The same undo as Inject returned it resumes the target.
	if err := newFault(t, params, env).Revert(context.Background(), undo); err != nil {
		t.Fatal(err)
	}
	waitState(t, target.Process.Pid, "SR")
}
