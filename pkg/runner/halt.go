package runner

import (
	"errors"
	"fmt"
	"time"
)

// Halt turns the persisted halt switch on: every active fault is ended and reverted now, and
// nothing fires until Resume — also after a restart, since the switch lives in the journal.
// It returns how many active runs it ended.
func (r *Runner) Halt(reason string) (int, error) {
	if reason == "" {
		reason = "halted"
	}
	if err := r.j.SetHalted(true, reason, time.Now().UTC()); err != nil {
		// Halt anyway in memory: refusing to stop chaos because the disk is sick would be
		// the wrong way round.
		r.journalError("halt", err)
		err = fmt.Errorf("halt not persisted: %w", err)
		r.setHalted(true)
		return r.abortAll(errors.New("halted: " + reason)), err
	}
	r.setHalted(true)
	if r.fleet != nil {
		r.fleet.AgentHalted(true, reason)
	}
	return r.abortAll(errors.New("halted: " + reason)), nil
}

// Resume turns the halt switch off.
func (r *Runner) Resume() error {
	if err := r.j.SetHalted(false, "", time.Now().UTC()); err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	r.setHalted(false)
	if r.fleet != nil {
		r.fleet.AgentHalted(false, "")
	}
	return nil
}

// Halted reports whether the halt switch is on.
func (r *Runner) Halted() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.halted
}

func (r *Runner) setHalted(h bool) {
	r.mu.Lock()
	r.halted = h
	r.mu.Unlock()
	r.m.Halted.Set(b2f(h))
}
