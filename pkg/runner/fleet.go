package runner

import (
	"context"
	"errors"

	"github.com/chaoscron/chaoscron/journal"
)

// Fleet is the group of agents this one shares its limits with (pkg/fleet, through the
// Kubernetes API); nil outside fleet mode. The runner asks it for a slot before a run's
// intent and tells it about every run's changes; it never waits on it otherwise.
type Fleet interface {
	// Take reserves a place among the faults the fleet allows at once for a run of fault
	// type ftype, named key. An error is a skip: its reason is the error's Reason() if it has
	// one (disruption-budget), else "fleet". A run the fleet cannot vouch for must not start.
	Take(ctx context.Context, key, ftype string) (*journal.Slot, error)
	// Release gives a slot back. It must not block: the fleet retries until it is done or
	// the slot has expired.
	Release(s *journal.Slot)
	// Tell reports a run's new state to the cluster (an Event on the pod). It must not block.
	Tell(rec *journal.Record)
	// AgentHalted reports this agent's own halt switch turned on or off. It must not block.
	AgentHalted(on bool, reason string)
}

// ReasonFleet is the skip reason for a fire the fleet refused or cannot vouch for.
const ReasonFleet = "fleet"

// fleetSkip turns a refusal from Fleet.Take into a skip.
func fleetSkip(err error) *SkipError {
	var r interface{ Reason() string }
	if errors.As(err, &r) {
		return &SkipError{r.Reason(), err.Error()}
	}
	return &SkipError{ReasonFleet, err.Error()}
}

// Suspend stops every fire, with reason and detail as its skip, and ends every active run now
// (reverted, status aborted); an empty reason lifts it. Unlike Halt it is not persisted: the
// fleet sets it while the group is halted or its state cannot be confirmed, and both are
// decided anew after a restart, from the API server.
func (r *Runner) Suspend(reason, detail string) {
	var now *SkipError
	if reason != "" {
		now = &SkipError{reason, detail}
	}
	r.mu.Lock()
	was := r.suspended
	r.suspended = now
	r.mu.Unlock()
	if now == nil {
		if was != nil {
			r.log.Info("fires resume", "was", was.Reason)
		}
		return
	}
	// A new detail alone (how long the state has been unknown) is not news: no log line.
	if was == nil || was.Reason != now.Reason {
		if n := r.abortAll(errors.New(reason + ": " + detail)); n > 0 {
			r.log.Warn("fires suspended; active faults reverted", "reason", reason, "detail", detail, "ended", n)
		} else {
			r.log.Warn("fires suspended", "reason", reason, "detail", detail)
		}
	}
}

// Suspended returns the skip every fire gets now, or nil.
func (r *Runner) Suspended() *SkipError {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.suspended
}

// tell passes a run's new state to the fleet, if any.
func (r *Runner) tell(rec *journal.Record) {
	if r.fleet != nil {
		cp := *rec
		r.fleet.Tell(&cp)
	}
}

// release gives a run's slot back, if it took one.
func (r *Runner) release(s *journal.Slot) {
	if r.fleet != nil && s != nil {
		r.fleet.Release(s)
	}
}
