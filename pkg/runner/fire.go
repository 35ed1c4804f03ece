package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/chaoscron/chaoscron/journal"
	"github.com/chaoscron/chaoscron/pkg/fault"
	"github.com/chaoscron/chaoscron/pkg/metrics"
)

// SkipError says why a fire did not inject. Reason is a short label value (metrics);
// Detail is for people.
type SkipError struct {
	Reason string
	Detail string
}

func (e *SkipError) Error() string { return "skipped (" + e.Reason + "): " + e.Detail }

// IsSkip reports whether err is a skip rather than a failure.
func IsSkip(err error) bool {
	var s *SkipError
	return errors.As(err, &s)
}

// ErrUnknown is returned for a fire of an experiment that is not configured (or disabled).
var ErrUnknown = errors.New("no such experiment")

// Fire runs experiment name once, now: the checks in order (halted, blackout, window, paused,
// concurrency, max_active, probability, then the stop condition's probe), then intent, inject, and a background hold and
// revert. It returns the run's journal id once the fault is in place, or a *SkipError, or the
// reason it failed. Manual triggers (fire, api) skip the window, pause and probability
// checks: a person asked for this run. They still honour halt, blackouts and an unhealthy
// target, which are safety rules.
func (r *Runner) Fire(ctx context.Context, name, trigger string, scheduled time.Time) (uint64, error) {
	a, err := r.decide(ctx, name, trigger, scheduled)
	if err != nil {
		return 0, err
	}
	return r.carry(a)
}

// attempt is a fire that has been through its checks: either skipped, or with its slot
// reserved (rn is in r.active and counted in r.running and r.wg) and its run context made.
type attempt struct {
	e         *experiment
	trigger   string
	scheduled time.Time
	now       time.Time // when the fire started: the run's started_at

	skip   *SkipError
	record bool // journal the skip (journal.record_skips)

	rn     *run
	ctx    context.Context // the run's own, cancelled by halt, abort_if or shutdown
	dryRun bool            // agent.dry_run when the fire started
}

// decide takes the fire's time and runs the checks, reserving a slot if they pass. It never
// blocks on I/O: the scheduler calls it on its own goroutine for every due experiment in
// turn, so that each fire of a busy tick starts when its turn in this loop comes rather than
// when the Go scheduler gets round to a goroutine of its own.
func (r *Runner) decide(ctx context.Context, name, trigger string, scheduled time.Time) (attempt, error) {
	now := time.Now()
	if scheduled.IsZero() {
		scheduled = now
	}
	a, err := r.decideLocked(ctx, name, trigger, scheduled, now)
	if err == nil && a.skip != nil {
		r.countSkip(a.e, a.skip)
	}
	return a, err
}

// decideLocked is decide's part under r.mu: the checks, and the reservation.
func (r *Runner) decideLocked(ctx context.Context, name, trigger string, scheduled, now time.Time) (attempt, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.exps[name]
	if !ok {
		return attempt{}, fmt.Errorf("fire %s: %w", name, ErrUnknown)
	}
	// record also serves a skip found later, before the intent (unhealthy).
	a := attempt{e: e, trigger: trigger, scheduled: scheduled, now: now, record: r.cfg.Journal.RecordSkips}
	if a.skip = r.checkLocked(e, trigger != TriggerSchedule, now); a.skip != nil {
		return a, nil
	}
	// Reserve the slot before the journal write, so two fires racing for the last
	// max_active slot cannot both pass the check.
	var cancel context.CancelCauseFunc
	a.ctx, cancel = context.WithCancelCause(context.WithoutCancel(ctx))
	a.rn = &run{exp: name, ftype: e.cfg.Fault.Type, f: e.f, cancel: cancel, done: make(chan struct{})}
	a.dryRun = r.cfg.Agent.DryRun
	r.active[a.rn] = struct{}{}
	r.running[name]++
	r.wg.Add(1)
	return a, nil
}

// countSkip counts and logs a skip.
func (r *Runner) countSkip(e *experiment, s *SkipError) {
	r.m.Injections.WithLabelValues(e.cfg.Fault.Type, metrics.Skipped).Inc()
	r.m.Skips.WithLabelValues(e.cfg.Name, s.Reason).Inc()
	r.log.Debug("skipped", "experiment", e.cfg.Name, "reason", s.Reason, "detail", s.Detail)
}

// carry does what a decided attempt needs: journals the skip, or takes the run through
// intent and inject (start). It returns as Fire does.
func (r *Runner) carry(a attempt) (uint64, error) {
	if a.skip != nil {
		if a.record {
			r.recordSkip(a.e, a.trigger, a.scheduled, a.now, a.skip)
		}
		return 0, a.skip
	}
	return r.start(a)
}

// checkLocked applies the checks in the design's order. r.mu is held.
func (r *Runner) checkLocked(e *experiment, manual bool, now time.Time) *SkipError {
	switch {
	case r.draining:
		return &SkipError{"shutdown", "the agent is shutting down"}
	case r.halted:
		return &SkipError{"halted", "the halt switch is on"}
	case r.suspended != nil:
		return r.suspended
	}
	window := e.cfg.Window
	if manual {
		window = "" // you asked for this run; blackouts still hold
	}
	if reason, detail := r.cal.Closed(window, now); reason != "" {
		return &SkipError{reason, detail}
	}
	if !manual && e.paused {
		return &SkipError{"paused", "the experiment is paused"}
	}
	if r.running[e.cfg.Name] > 0 && e.cfg.Concurrency != "allow" {
		return &SkipError{"concurrency", "a run of this experiment is still active (concurrency: forbid)"}
	}
	if max := r.cfg.Agent.MaxActive; max > 0 && len(r.active) >= max {
		return &SkipError{"max_active", fmt.Sprintf("%d faults are active (agent.max_active: %d)", len(r.active), max)}
	}
	if !manual && !e.dice.Roll(e.cfg.Probability) {
		return &SkipError{"probability", fmt.Sprintf("lost the probability roll (p=%g)", e.cfg.Probability)}
	}
	return nil
}

// skip counts a skip found after the checks (a plan with no target) and journals it.
func (r *Runner) skip(e *experiment, trigger string, scheduled, now time.Time, s *SkipError) {
	r.countSkip(e, s)
	r.recordSkip(e, trigger, scheduled, now, s)
}

// recordSkip journals a skip as a closed run.
func (r *Runner) recordSkip(e *experiment, trigger string, scheduled, now time.Time, s *SkipError) {
	rec := r.record(e, trigger, scheduled, now)
	rec.Status, rec.Cleanup, rec.Reason, rec.EndedAt = journal.Skipped, journal.CleanupNone, s.Detail, now
	if err := r.j.Begin(&rec); err != nil {
		r.journalError("record skip", err)
	}
}

func (r *Runner) record(e *experiment, trigger string, scheduled, now time.Time) journal.Record {
	return journal.Record{
		Experiment:  e.cfg.Name,
		Fault:       e.cfg.Fault.Type,
		Params:      e.params,
		Trigger:     trigger,
		ScheduledAt: scheduled.UTC(),
		StartedAt:   now.UTC(),
		Agent:       r.agent,
	}
}

func (r *Runner) journalError(what string, err error) {
	r.m.JournalErrs.Inc()
	r.log.Error("journal write failed", "op", what, "err", err)
}

func marshalParams(p fault.Params) ([]byte, error) {
	if p == nil {
		return nil, nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode fault params: %w", err)
	}
	return b, nil
}
