package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/chaoscron/chaoscron/journal"
	"github.com/chaoscron/chaoscron/pkg/fault"
	"github.com/chaoscron/chaoscron/pkg/metrics"
)

// start takes a reserved run through plan → intent → inject, then leaves hold and revert to a
// goroutine. a.rn is already in r.active and counted in r.wg; every path out releases both.
func (r *Runner) start(a attempt) (uint64, error) {
	e, rn, rctx, trigger, scheduled, now := a.e, a.rn, a.ctx, a.trigger, a.scheduled, a.now
	ftype := e.cfg.Fault.Type
	log := r.log.With("experiment", e.cfg.Name, "fault", ftype)
	release := func() {
		r.mu.Lock()
		delete(r.active, rn)
		if r.running[rn.exp]--; r.running[rn.exp] <= 0 {
			delete(r.running, rn.exp)
		}
		r.dropEndLocked(rn)
		r.mu.Unlock()
		rn.cancel(nil)
		close(rn.done)
		r.wg.Done()
	}
	// The steady state first: a target already unhealthy gets no fault on top. The probe
	// runs here, in the fire's goroutine, never on the scheduler's loop (see decide).
	if e.cfg.AbortIf.Enabled() {
		if last := r.probe(rctx, e.cfg.AbortIf); last != "" {
			release()
			s := &SkipError{"unhealthy", fmt.Sprintf("stop condition already failing before the fault: GET %s: %s", e.cfg.AbortIf.HTTP, last)}
			r.countSkip(e, s)
			if a.record {
				r.recordSkip(e, trigger, scheduled, now, s)
			}
			return 0, s
		}
	}
	rec := r.record(e, trigger, scheduled, now)
	rec.PlannedEnd = now.Add(e.cfg.Duration).UTC()
	rec.DryRun = a.dryRun

	// Plan and Inject get the run's own context, not the caller's: it lives as long as the
	// run (a scheduler tick or an HTTP request does not), and it is what a halt, a stop
	// condition or shutdown cancels — so a halt during a kill's grace period stops the
	// escalation instead of waiting it out.
	key := fmt.Sprintf("%s-%d", r.agent.Instance, r.seq.Add(1))
	plan, err := e.f.Plan(rctx, key)
	if err != nil {
		release()
		if errors.Is(err, fault.ErrSkip) {
			s := &SkipError{"no_target", err.Error()}
			r.skip(e, trigger, scheduled, now, s)
			return 0, s
		}
		// Nothing was changed: record the failure as a closed run.
		rec.Status, rec.Cleanup, rec.Error, rec.EndedAt = journal.Failed, journal.CleanupNone, err.Error(), time.Now().UTC()
		if jerr := r.j.Begin(&rec); jerr != nil {
			r.journalError("record failed plan", jerr)
		}
		r.m.Injections.WithLabelValues(ftype, metrics.Failed).Inc()
		r.m.Runs.WithLabelValues(e.cfg.Name, string(journal.Failed)).Inc()
		log.Warn("run failed", "run", rec.ID, "stage", "plan", "err", err)
		return rec.ID, fmt.Errorf("plan %s: %w", e.cfg.Name, err)
	}
	rec.Undo = plan

	if rec.DryRun {
		rec.Status, rec.Cleanup, rec.EndedAt = journal.Succeeded, journal.CleanupNone, time.Now().UTC()
		rec.Reason = "dry run: " + describe(e.f, ftype)
		err := r.j.Begin(&rec)
		release()
		if err != nil {
			r.journalError("record dry run", err)
			return 0, fmt.Errorf("record dry run: %w", err)
		}
		r.m.Injections.WithLabelValues(ftype, metrics.Skipped).Inc()
		r.m.Skips.WithLabelValues(e.cfg.Name, "dry_run").Inc()
		r.m.Runs.WithLabelValues(e.cfg.Name, string(journal.Succeeded)).Inc()
		log.Info("dry run", "run", rec.ID, "would", rec.Reason)
		return rec.ID, nil
	}

	// In a fleet, a place among the faults the group allows at once comes first, and the
	// intent records it, so whoever reverts the run gives it back.
	if r.fleet != nil {
		slot, err := r.fleet.Take(rctx, key, ftype)
		if err != nil {
			release()
			s := fleetSkip(err)
			r.countSkip(e, s)
			if a.record {
				r.recordSkip(e, trigger, scheduled, now, s)
			}
			return 0, s
		}
		rec.Slot = slot
	}

	// Write-ahead: the intent, with the undo plan, is on disk before the system changes.
	// No journal, no chaos.
	rec.Status, rec.Cleanup = journal.Pending, journal.CleanupPending
	unsweep := r.holdSweep(e.f)
	if err := r.j.Begin(&rec); err != nil {
		unsweep()
		r.release(rec.Slot)
		release()
		r.journalError("intent", err)
		r.m.Injections.WithLabelValues(ftype, metrics.Failed).Inc()
		return 0, fmt.Errorf("journal intent for %s (nothing injected): %w", e.cfg.Name, err)
	}
	r.mu.Lock()
	rn.id = rec.ID
	r.mu.Unlock()
	r.refreshOpen()
	log = log.With("run", rec.ID)
	log.Info("run pending", "planned_end", rec.PlannedEnd)

	undo, err := e.f.Inject(rctx, plan)
	unsweep()
	if undo == nil {
		undo = plan
	}
	if err != nil {
		// Inject reverses what it applied; revert the plan as well, since it is idempotent
		// and a fault that half-failed is exactly what must not be left behind.
		rerr := r.revert(rctx, e.f, undo)
		r.finish(log, ftype, &rec, func(x *journal.Record) {
			x.Status, x.Error, x.Undo = journal.Failed, err.Error(), undo
			x.Cleanup = journal.CleanupDone
			if rerr != nil {
				x.Cleanup, x.Error = journal.CleanupFailed, err.Error()+"; revert: "+rerr.Error()
			}
		})
		r.m.Injections.WithLabelValues(ftype, metrics.Failed).Inc()
		if rerr == nil {
			r.release(rec.Slot)
		}
		release()
		return rec.ID, fmt.Errorf("inject %s: %w", e.cfg.Name, err)
	}
	r.mu.Lock()
	rn.undo, rn.end = undo, rec.PlannedEnd
	r.addEndLocked(rn)
	r.mu.Unlock()
	applied := time.Now()
	// rec is this run's own record, and nobody else writes a live run: Put, not Update.
	rec.Status, rec.AppliedAt, rec.Undo = journal.Active, applied.UTC(), undo
	if err := r.j.Put(&rec); err != nil {
		// The fault is in place but the journal cannot follow: take it out again now.
		r.journalError("active", err)
		rn.cancel(fmt.Errorf("journal update failed: %w", err))
	}
	r.m.Injections.WithLabelValues(ftype, metrics.Success).Inc()
	r.m.Active.WithLabelValues(ftype).Inc()
	log.Info("run active", "applied_in", applied.Sub(now).String())
	r.tell(&rec)

	if e.cfg.AbortIf.Enabled() {
		go r.watchStop(rctx, e.cfg.AbortIf, rn, log)
	}
	go func() {
		defer release()
		r.hold(rctx, rec.PlannedEnd)
		cause := context.Cause(rctx)
		rerr := r.revert(rctx, e.f, undo)
		r.m.Active.WithLabelValues(ftype).Dec()
		r.m.Duration.WithLabelValues(ftype).Observe(time.Since(applied).Seconds())
		r.finish(log, ftype, &rec, func(x *journal.Record) {
			x.Status, x.Cleanup = journal.Succeeded, journal.CleanupDone
			if cause != nil {
				x.Status, x.Reason = journal.Aborted, cause.Error()
			}
			if rerr != nil {
				x.Cleanup, x.Error = journal.CleanupFailed, "revert: "+rerr.Error()
			}
		})
		if rerr == nil {
			// A fault still in place keeps its slot (renewed) until a retry reverts it.
			r.release(rec.Slot)
		}
		r.tripped(e.cfg.Name, cause, rerr == nil)
	}()
	return rec.ID, nil
}

// hold waits until the planned end or until the run is ended early.
func (r *Runner) hold(ctx context.Context, end time.Time) {
	t := time.NewTimer(time.Until(end))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// revert runs on a context detached from ctx: the cancellation that ended the run early must
// not also cancel its cleanup.
func (r *Runner) revert(ctx context.Context, f fault.Fault, undo fault.Undo) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), revertTimeout)
	defer cancel()
	return f.Revert(ctx, undo)
}

// finish records the end of run rec (the run's own record, written by nobody else) and
// counts it.
func (r *Runner) finish(log *slog.Logger, ftype string, rec *journal.Record, set func(*journal.Record)) {
	rec.EndedAt = time.Now().UTC()
	set(rec)
	if err := r.j.Put(rec); err != nil {
		r.journalError("finish", err)
		return
	}
	result := "ok"
	if rec.Cleanup == journal.CleanupFailed {
		result = "failed"
		log.Error("revert failed: fault may still be in place; kept open for retry", "status", rec.Status, "err", rec.Error)
	} else {
		log.Info("run "+string(rec.Status), "cleanup", rec.Cleanup, "reason", rec.Reason)
	}
	if rec.Status != journal.Failed {
		r.m.Reverts.WithLabelValues(ftype, result).Inc()
	}
	r.tell(rec)
	r.m.Runs.WithLabelValues(rec.Experiment, string(rec.Status)).Inc()
	r.refreshOpen()
}

func describe(f fault.Fault, ftype string) string {
	if d, ok := f.(fault.Describer); ok {
		return d.Describe()
	}
	return "inject " + ftype
}
