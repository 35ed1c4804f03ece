package process

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// stopSettle bounds the wait for a stopped target to show state T. A process in
// uninterruptible sleep stops only when it leaves it; SIGSTOP stays pending until then.
const stopSettle = time.Second

// stop sends SIGSTOP to every target that is still the process the plan names and records
// the result of each in u. If one cannot be stopped (not merely gone), the ones already
// stopped are resumed and stop fails, so that no half-applied fault is left behind.
func (f *Fault) stop(ctx context.Context, u *undo) error {
	var stopped []*handle
	defer func() {
		for _, h := range stopped {
			h.close()
		}
	}()
	for i := range u.Targets {
		t := &u.Targets[i]
		h, why, err := openTarget(ctx, f.env.Proc, t)
		if err == nil && h != nil {
			err = h.signal(unix.SIGSTOP)
			if errors.Is(err, errGone) {
				h.close()
				h, why, err = nil, "exited", nil
			}
		}
		switch {
		case err != nil:
			if h != nil {
				h.close()
			}
			t.Result, t.Note = resultError, err.Error()
			// Inject must not leave half a fault behind: resume what it stopped.
			if rerr := continueAll(stopped); rerr != nil {
				err = errors.Join(err, rerr)
			}
			for j := range i {
				if u.Targets[j].Result == resultStopped {
					u.Targets[j].Result = resultResumed
				}
			}
			return fmt.Errorf("process: stop: %w (the processes stopped already were resumed)", err)
		case h == nil:
			t.Result, t.Note = resultGone, why
		default:
			t.Result = resultStopped
			stopped = append(stopped, h)
		}
	}
	if len(stopped) == 0 {
		return fmt.Errorf("process: stop: every target had exited before it could be stopped")
	}
	// Return once the fault is in place: every stopped target shows T (or has gone).
	deadline := time.Now().Add(stopSettle)
	for _, h := range stopped {
		for s := h.state(); s != 'T' && s != 'X' && s != 'Z' && time.Now().Before(deadline) && ctx.Err() == nil; s = h.state() {
			time.Sleep(time.Millisecond)
		}
	}
	f.env.Log.Info("processes stopped", "run", u.Run, "count", len(stopped))
	return nil
}

// continueAll undoes the SIGSTOPs of a stop that failed half-way.
func continueAll(hs []*handle) error {
	var errs []error
	for _, h := range hs {
		if err := h.signal(unix.SIGCONT); err != nil && !errors.Is(err, errGone) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// resume sends SIGCONT to the targets of a stop, from the undo alone: each target whose live
// process is still the one the undo names (same boot, same start time) gets SIGCONT; one
// that has exited, or whose pid another process has taken, is left alone. SIGCONT goes out
// whatever state the target shows, because a SIGSTOP can still be pending (the target was in
// uninterruptible sleep) and SIGCONT is what cancels it.
func (f *Fault) resume(ctx context.Context, u *undo) error {
	switch same, err := f.sameBoot(u); {
	case err != nil:
		return err
	case !same:
		f.env.Log.Info("process: nothing to resume: the machine has rebooted since the processes were stopped", "run", u.Run)
		return nil
	}
	var errs []error
	resumed := 0
	for i := range u.Targets {
		t := &u.Targets[i]
		switch t.Result {
		case resultError, resultGone, resultResumed:
			// Inject recorded that this one was never stopped, or was resumed already: a
			// SIGCONT is not ours to send (and one refused with EPERM would fail every retry).
			// A plan without results (a crash before Inject recorded any) resumes them all.
			continue
		}
		h, why, err := openTarget(ctx, f.env.Proc, t)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if h == nil {
			f.env.Log.Info("process: not resumed", "run", u.Run, "pid", t.Pid, "why", why)
			continue
		}
		err = h.signal(unix.SIGCONT)
		h.close()
		switch {
		case errors.Is(err, errGone):
		case err != nil:
			errs = append(errs, err)
		default:
			resumed++
		}
	}
	f.env.Log.Info("processes resumed", "run", u.Run, "count", resumed)
	return errors.Join(errs...)
}
