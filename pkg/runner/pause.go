package runner

import (
	"errors"
	"fmt"
	"time"

	"github.com/chaoscron/chaoscron/journal"
)

// SetPaused pauses or resumes one experiment's schedule. A paused experiment's ticks are
// skipped (reason "paused"); a run already in place is not ended, and a manual fire still
// works. The flag is persisted in the journal, like the halt switch, so a paused experiment
// stays paused across restarts and reloads until it is resumed. Resuming also forgets the
// experiment's count of stop-condition trips.
func (r *Runner) SetPaused(name string, paused bool) error {
	return r.setPaused(name, paused, "paused by hand")
}

func (r *Runner) setPaused(name string, paused bool, reason string) error {
	r.mu.Lock()
	_, ok := r.exps[name]
	r.mu.Unlock()
	if !ok {
		return fmt.Errorf("experiment %s: %w", name, ErrUnknown)
	}
	if !paused {
		reason = ""
	}
	at := time.Now().UTC()
	err := r.j.SetPaused(name, paused, reason, at)
	if err != nil {
		r.journalError("pause", err)
		if !paused {
			// Resuming in memory while the journal still says paused would undo itself at
			// the next restart: refuse instead, so what you see is what stays.
			return fmt.Errorf("resume %s: %w", name, err)
		}
		// Pause anyway in memory, as Halt does: a sick disk must not keep chaos going.
		err = fmt.Errorf("pause of %s not persisted: %w", name, err)
	}
	r.mu.Lock()
	e, ok := r.exps[name]
	changed := ok && e.paused != paused
	if ok {
		e.paused = paused
		if !paused {
			e.trips = 0
		}
	}
	if paused {
		r.pauses[name] = journal.Pause{Reason: reason, At: at}
	} else {
		delete(r.pauses, name)
	}
	r.mu.Unlock()
	r.m.Paused.WithLabelValues(name).Set(b2f(paused))
	if changed {
		if paused {
			r.log.Warn("experiment paused", "experiment", name, "reason", reason)
		} else {
			r.log.Info("experiment resumed", "experiment", name)
		}
	}
	return err
}

// tripped counts how a run of experiment name ended, for abort_if.max_trips: a run aborted
// by its stop condition is a trip, a run that held to its end resets the count, and any other
// end (halt, shutdown, reload, a failed inject) leaves it as it was. After max_trips trips in
// a row the experiment pauses itself; with halt_on_trip every trip halts the agent. It runs
// after the fault is reverted, in the run's goroutine.
func (r *Runner) tripped(name string, cause error, reverted bool) {
	var sc *StopCondition
	r.mu.Lock()
	e, ok := r.exps[name]
	if !ok {
		r.mu.Unlock()
		return
	}
	cond := e.cfg.AbortIf
	if !errors.As(cause, &sc) {
		if cause == nil && reverted {
			e.trips = 0
		}
		r.mu.Unlock()
		return
	}
	e.trips++
	trips, pause := e.trips, !e.paused && e.trips >= cond.MaxTrips
	r.mu.Unlock()
	r.m.Trips.WithLabelValues(name).Inc()

	if cond.HaltOnTrip {
		if _, err := r.Halt(fmt.Sprintf("experiment %s: %s (abort_if.halt_on_trip)", name, sc.Error())); err != nil {
			r.log.Error("halt on stop condition", "experiment", name, "err", err)
		}
		r.log.Warn("agent halted by a stop condition", "experiment", name, "url", sc.URL)
	}
	if pause {
		reason := fmt.Sprintf("%d runs in a row aborted by the stop condition (abort_if.max_trips: %d); last: %s", trips, cond.MaxTrips, sc.Error())
		if err := r.setPaused(name, true, reason); err != nil {
			r.log.Error("pause after stop-condition trips", "experiment", name, "err", err)
		}
	}
}
