package process

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"golang.org/x/sys/unix"
)

// killWait bounds the wait for a process to end after SIGKILL: one in uninterruptible sleep
// (a hung NFS read) ends only when the kernel lets it.
const killWait = 10 * time.Second

// kill sends the first signal to every target that is still the process the plan names,
// waits up to the grace period for them to end, sends SIGKILL to the ones still there and
// waits for those too, and records in u per target which signal ended it and when. If ctx
// ends first, it stops waiting and does not escalate: a halt must not add chaos.
func (f *Fault) kill(ctx context.Context, u *undo) error {
	sig := unix.SignalNum(u.Signal)
	grace, err := time.ParseDuration(u.Grace)
	if sig == 0 || err != nil || grace < 0 {
		return fmt.Errorf("process: malformed undo: signal %q, grace %q", u.Signal, u.Grace)
	}
	n := len(u.Targets)
	hs := make([]*handle, n)
	sentAt := make([]time.Time, n)
	goneAt := make([]time.Time, n)
	var errs []error
	defer func() {
		for _, h := range hs {
			if h != nil {
				h.close()
			}
		}
	}()

	for i := range u.Targets {
		t := &u.Targets[i]
		h, why, err := openTarget(ctx, f.env.Proc, t)
		switch {
		case err != nil:
			t.Result, t.Note = resultError, err.Error()
			errs = append(errs, err)
		case h == nil:
			t.Result, t.Note = resultGone, why
		default:
			sentAt[i] = time.Now()
			switch err := h.signal(sig); {
			case errors.Is(err, errGone):
				t.Result, t.Note = resultGone, "exited"
				h.close()
			case err != nil:
				t.Result, t.Note = resultError, err.Error()
				errs = append(errs, err)
				h.close()
			default:
				t.Signal = u.Signal
				hs[i] = h
				// A stopped process cannot act on the signal until it runs again: let it, as
				// systemd does, or its grace period is wasted.
				if sig != unix.SIGKILL && h.state() == 'T' {
					_ = h.signal(unix.SIGCONT)
				}
			}
		}
	}

	first := grace
	if sig == unix.SIGKILL {
		first = killWait
	}
	waitGone(ctx, hs, goneAt, time.Now().Add(first))
	if sig != unix.SIGKILL && ctx.Err() == nil {
		escalated := false
		for i, h := range hs {
			if h == nil || !goneAt[i].IsZero() {
				continue
			}
			switch err := h.signal(unix.SIGKILL); {
			case errors.Is(err, errGone):
				goneAt[i] = time.Now() // ended by the first signal, just now
			case err != nil:
				u.Targets[i].Note = err.Error()
				errs = append(errs, err)
			default:
				u.Targets[i].Signal = "SIGKILL"
				escalated = true
			}
		}
		if escalated {
			waitGone(ctx, hs, goneAt, time.Now().Add(killWait))
		}
	}

	for i, h := range hs {
		if h == nil {
			continue
		}
		t := &u.Targets[i]
		if goneAt[i].IsZero() {
			t.Result = resultAlive
			continue
		}
		t.Result = resultEnded
		t.ElapsedMS = math.Round(float64(goneAt[i].Sub(sentAt[i]))/float64(time.Millisecond)*10) / 10
		f.env.Log.Info("process ended", "run", u.Run, "pid", t.Pid, "signal", t.Signal, "elapsed_ms", t.ElapsedMS)
	}
	if err := ctx.Err(); err != nil {
		errs = append(errs, fmt.Errorf("waiting for the processes to end: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("process: kill: %w", err)
	}
	return nil
}
