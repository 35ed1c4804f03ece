package process

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/internal/testenv"
	"github.com/chaoscron/chaoscron/pkg/fault"
	"golang.org/x/sys/unix"
)

func TestOpenTargetUsesAPidfd(t *testing.T) {
	child := namedSleep(t, t.TempDir(), "cc"+unique(t))
	st, err := readStat("/proc", child.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	h, why, err := openTarget(context.Background(), "/proc", &target{Pid: child.Process.Pid, StartTicks: st.startTicks})
	if err != nil || h == nil {
		t.Fatalf("openTarget: %v, %q", err, why)
	}
	defer h.close()
	testenv.Require(t, h.fd >= 0, "pidfd_open is not available (kernel before 5.3, or filtered)")
}

// Kernels without pidfds: kill(2) right after the identity check, and exits seen by polling
// /proc.
func TestHandleWithoutPidfd(t *testing.T) {
	target := namedSleep(t, t.TempDir(), "cc"+unique(t))
	st, err := readStat("/proc", target.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	h := &handle{pid: target.Process.Pid, fd: -1, proc: "/proc", startTicks: st.startTicks}
	if h.exited() {
		t.Fatal("a sleeping process reads as exited")
	}
	if err := h.signal(unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	goneAt := make([]time.Time, 1)
	waitGone(context.Background(), []*handle{h}, goneAt, time.Now().Add(5*time.Second))
	if goneAt[0].IsZero() {
		t.Fatal("the exit was not seen")
	}
	if sig := endedBy(t, target); sig != syscall.SIGKILL {
		t.Fatalf("ended by %v", sig)
	}
	if err := h.signal(unix.SIGKILL); !errors.Is(err, errGone) {
		t.Fatalf("signal to a reaped process: %v, want errGone", err)
	}
}

// A halt while a kill waits out its grace period stops the waiting and does not escalate.
func TestKillCancelledDuringGraceDoesNotEscalate(t *testing.T) {
	marker := "ignores-term-" + unique(t)
	stubborn, _ := helper(t, "ignore-term", marker)
	f := newFault(t, fault.Params{"cmdline": marker, "grace": "1m"}, agentEnv(t))
	plan := planOurs(t, f, stubborn)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	raw, err := f.Inject(ctx, plan)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Inject: %v, want the context's error", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Inject took %v after its context ended", took)
	}
	if tg := decode(t, raw).Targets[0]; tg.Result != resultAlive || tg.Signal != "SIGTERM" {
		t.Fatalf("target %+v: want alive, sent SIGTERM only", tg)
	}
	time.Sleep(50 * time.Millisecond)
	if s := procState(t, stubborn.Process.Pid); s != 'S' && s != 'R' {
		t.Fatalf("the target is in state %c: it was escalated", s)
	}
}
