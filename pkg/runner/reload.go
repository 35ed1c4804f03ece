package runner

import (
	"errors"
	"reflect"
	"slices"

	"github.com/chaoscron/chaoscron/pkg/config"
)

// ReloadReport says what a Reload changed.
type ReloadReport struct {
	Added, Changed, Removed []string // experiment names, sorted
	Ended                   int      // active runs of removed experiments, ended and reverted
	// Restart lists settings that changed in the file but take effect only on restart.
	Restart []string
}

// Reload swaps in a new, validated config without a restart. Every fault is built first:
// if any fails, nothing changes and the old config keeps running. Then:
//   - an experiment that is gone (or now disabled) is unscheduled, and its active runs are
//     ended and reverted (reason "config reload: experiment removed");
//   - a new or changed experiment is (re)scheduled from now; runs of a changed experiment
//     already in place finish as they started;
//   - an unchanged experiment keeps its schedule position, probability dice and pause flag.
//
// Agent-wide settings (dry_run, max_active, seed for new experiments, record_skips,
// windows, blackouts) apply to the next fire. The time zone, the journal, the listen
// address and the API token are fixed for the life of the process; a change to them is
// reported in Restart.
func (r *Runner) Reload(cfg *config.Config) (ReloadReport, error) {
	var rep ReloadReport
	if cfg == nil {
		return rep, errors.New("reload: no config")
	}
	cal, exps, err := r.build(cfg)
	if err != nil {
		return rep, err
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.exps
	for name, e := range exps {
		o, ok := old[name]
		switch {
		case !ok:
			_, e.paused = r.pauses[name] // a persisted pause outlives the experiment's absence
			r.m.Paused.WithLabelValues(name).Set(b2f(e.paused))
			rep.Added = append(rep.Added, name)
		case reflect.DeepEqual(o.cfg, e.cfg):
			exps[name] = o
		default:
			e.paused = o.paused
			rep.Changed = append(rep.Changed, name)
		}
	}
	for name := range old {
		if _, ok := exps[name]; !ok {
			rep.Removed = append(rep.Removed, name)
		}
	}
	slices.Sort(rep.Added)
	slices.Sort(rep.Changed)
	slices.Sort(rep.Removed)
	if r.cfg.Location().String() != cfg.Location().String() {
		rep.Restart = append(rep.Restart, "agent.timezone")
	}
	if r.cfg.Journal.Path != cfg.Journal.Path {
		rep.Restart = append(rep.Restart, "journal.path")
	}
	if r.cfg.Agent.Listen != cfg.Agent.Listen {
		rep.Restart = append(rep.Restart, "agent.listen")
	}
	if r.cfg.API != cfg.API {
		rep.Restart = append(rep.Restart, "api")
	}
	r.cfg, r.cal, r.exps = cfg, cal, exps

	for rn := range r.active {
		if slices.Contains(rep.Removed, rn.exp) {
			rn.cancel(errors.New("config reload: experiment removed"))
			rep.Ended++
		}
	}
	for _, name := range rep.Removed {
		r.m.NextFire.DeleteLabelValues(name)
		r.m.Paused.DeleteLabelValues(name)
	}
	if r.sched != nil {
		for _, name := range rep.Removed {
			r.sched.Remove(name)
		}
		for _, name := range slices.Concat(rep.Added, rep.Changed) {
			r.addEntry(name, exps[name])
		}
		r.refreshNextLocked()
	}
	return rep, nil
}
