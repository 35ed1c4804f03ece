package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/chaoscron/chaoscron/journal"
	"github.com/chaoscron/chaoscron/pkg/fault"
)

// Report says what Recover found and did.
type Report struct {
	Open      int      // open runs found in the journal, from other agent instances
	Recovered int      // of those, reverted and closed
	Failed    int      // of those, whose revert failed (kept open for the next attempt)
	Swept     []string // leftovers no journal record owned, removed by a fault's Sweeper
	Took      time.Duration
}

// Recover reverses every fault an earlier agent left behind: each journal run whose cleanup is
// pending or failed and that no run of this process owns. It reads the open-runs index only, so
// it costs O(open runs), not O(journal). Each fault is rebuilt from the params stored with its
// run, not from the current config: the experiment may have been renamed or removed since.
// Then every configured fault that can sweep removes what carries chaoscron's mark but no
// open run owns (a lost or wiped journal), and each removal is recorded.
//
// Whoever holds the journal holds its exclusive lock, so no other live agent can own these runs.
func (r *Runner) Recover(ctx context.Context) (Report, error) {
	start := time.Now()
	rep, err := r.recoverOpen(ctx)
	errs := []error{err}
	swept, err := r.sweep(ctx)
	rep.Swept = swept
	errs = append(errs, err)
	rep.Took = time.Since(start)
	return rep, errors.Join(errs...)
}

// recoverWorkers bounds how many left-behind faults are reverted at once. Reverts wait
// mostly on the kernel (an fsync, a netlink answer), and the journal records of reverts
// that end together share one commit (see the journal's group commit), so reverting a few
// at a time costs little more than one (BenchmarkRecover). 64 rather than 16: fewer, larger
// commits, measurably faster recovery (docs/performance.md).
const recoverWorkers = 64

// recoverOpen reverts the open runs that no live run of this process owns.
func (r *Runner) recoverOpen(ctx context.Context) (Report, error) {
	r.recovering.Lock()
	defer r.recovering.Unlock()
	var rep Report
	open, err := r.j.OpenRuns()
	if err != nil {
		return rep, fmt.Errorf("recover: read open runs: %w", err)
	}
	mine := r.ownIDs()
	var (
		mu   sync.Mutex // guards rep and errs
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, recoverWorkers)
	)
	for _, rec := range open {
		// A pending run of this very process is one being injected right now (its id may
		// not be in r.active yet): never revert it from under its owner.
		if mine[rec.ID] || (rec.Agent.Instance == r.agent.Instance && rec.Cleanup == journal.CleanupPending) {
			continue
		}
		rep.Open++
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			rerr, jerr := r.recoverRun(ctx, rec)
			mu.Lock()
			defer mu.Unlock()
			if rerr != nil {
				rep.Failed++
				errs = append(errs, fmt.Errorf("run %d (%s): %w", rec.ID, rec.Experiment, rerr))
			} else {
				rep.Recovered++
			}
			if jerr != nil {
				errs = append(errs, fmt.Errorf("record recovery of run %d: %w", rec.ID, jerr))
			}
		}()
	}
	wg.Wait()
	r.refreshOpen()
	return rep, errors.Join(errs...)
}

// recoverRun reverts one run left behind and records the outcome: the revert's error, and
// the journal's if the outcome could not be recorded.
func (r *Runner) recoverRun(ctx context.Context, rec journal.Record) (rerr, jerr error) {
	log := r.log.With("experiment", rec.Experiment, "run", rec.ID, "fault", rec.Fault, "left_by", rec.Agent.Instance)
	rerr = r.revertRecord(ctx, rec)
	result := "ok"
	if rerr != nil {
		result = "failed"
		log.Error("recovery revert failed; kept open for retry", "err", rerr)
	} else {
		log.Info("recovered fault left behind", "status_was", rec.Status)
	}
	r.m.Recoveries.WithLabelValues(rec.Fault, result).Inc()
	now := time.Now().UTC()
	got, jerr := r.j.Update(rec.ID, func(x *journal.Record) error {
		if x.Status == journal.Pending || x.Status == journal.Active {
			x.Status = journal.Aborted
			x.Reason = fmt.Sprintf("agent %s stopped while the fault was in place", x.Agent.Instance)
		}
		if x.EndedAt.IsZero() {
			x.EndedAt = now
		}
		if rerr != nil {
			x.Cleanup, x.Error = journal.CleanupFailed, "recovery revert: "+rerr.Error()
		} else {
			x.Cleanup = journal.CleanupRecovered
		}
		return nil
	})
	if jerr != nil {
		r.journalError("recover", jerr)
	} else {
		r.tell(&got)
	}
	if rerr == nil {
		r.release(rec.Slot)
	}
	return rerr, jerr
}

// revertRecord rebuilds the run's fault from its stored params and reverts its undo.
func (r *Runner) revertRecord(ctx context.Context, rec journal.Record) error {
	var params fault.Params
	if len(rec.Params) > 0 {
		if err := json.Unmarshal(rec.Params, &params); err != nil {
			return fmt.Errorf("decode stored params: %w", err)
		}
	}
	// Built without this agent's listen port: that only shapes what a *new* injection
	// excludes, and a port changed since the crash must not make the stored params invalid
	// and so keep the left-behind fault in place.
	env := r.env
	env.ListenPort = 0
	f, err := fault.New(rec.Fault, params, env)
	if err != nil {
		return fmt.Errorf("rebuild %s fault: %w", rec.Fault, err)
	}
	if len(rec.Undo) == 0 {
		// The intent is always written with its plan; a record without one changed nothing.
		return nil
	}
	return r.revert(ctx, f, rec.Undo)
}

// sweep asks every configured fault that can sweep to remove unowned leftovers.
//
// It may run while runs start (an operator's recover on a live agent). What it keeps is a
// snapshot: the undos of the runs in place and of the open runs in the journal. A run of
// a sweepable fault whose intent is written after that snapshot and whose fault is in place
// before the sweep looks would be taken for a leftover; so a sweep holds r.sweeping, and
// such a run holds it (shared) from its intent until Inject returns (see holdSweep).
func (r *Runner) sweep(ctx context.Context) ([]string, error) {
	r.sweeping.Lock()
	defer r.sweeping.Unlock()
	r.mu.Lock()
	var keep []fault.Undo
	for rn := range r.active {
		if rn.undo != nil {
			keep = append(keep, rn.undo)
		}
	}
	exps := make([]*experiment, 0, len(r.exps))
	for _, e := range r.exps {
		exps = append(exps, e)
	}
	r.mu.Unlock()
	if open, err := r.j.OpenRuns(); err == nil {
		for _, rec := range open {
			keep = append(keep, rec.Undo)
		}
	}

	var all []string
	var errs []error
	for _, e := range exps {
		s, ok := e.f.(fault.Sweeper)
		if !ok {
			continue
		}
		swept, err := s.Sweep(ctx, keep)
		if err != nil {
			errs = append(errs, fmt.Errorf("sweep for %s: %w", e.cfg.Name, err))
		}
		for _, what := range swept {
			r.m.Sweeps.WithLabelValues(e.cfg.Fault.Type).Inc()
			r.log.Warn("swept leftover with no journal record", "experiment", e.cfg.Name, "removed", what)
			now := time.Now().UTC()
			rec := journal.Record{
				Experiment: e.cfg.Name, Fault: e.cfg.Fault.Type, Params: e.params, Trigger: TriggerSweep,
				StartedAt: now, EndedAt: now, Status: journal.Aborted, Cleanup: journal.CleanupRecovered,
				Reason: "swept: " + what, Agent: r.agent,
			}
			if err := r.j.Begin(&rec); err != nil {
				r.journalError("record sweep", err)
			}
		}
		all = append(all, swept...)
	}
	return all, errors.Join(errs...)
}

// holdSweep keeps sweeps out while a run of f, if f can sweep, goes from intent to inject,
// and returns what lets them in again. Other faults leave no marks a sweep looks for, and
// need not wait for one.
func (r *Runner) holdSweep(f fault.Fault) (release func()) {
	if _, ok := f.(fault.Sweeper); !ok {
		return func() {}
	}
	r.sweeping.RLock()
	return r.sweeping.RUnlock
}

func (r *Runner) ownIDs() map[uint64]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := map[uint64]bool{}
	for rn := range r.active {
		if rn.id != 0 {
			ids[rn.id] = true
		}
	}
	return ids
}

// RetryCleanups reverts, every interval until ctx ends, the open runs that no live run owns:
// reverts that failed earlier, in this process or a previous one. A fault must not stay
// behind just because its first revert hit a transient error. It does not sweep: a sweep
// racing a run being injected could take that run's fault for a leftover.
func (r *Runner) RetryCleanups(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		open, err := r.j.OpenRuns()
		if err != nil || len(open) == 0 {
			continue
		}
		if _, err := r.recoverOpen(ctx); err != nil {
			r.log.Warn("cleanup retry", "err", err)
		}
	}
}
