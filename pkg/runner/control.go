package runner

import (
	"context"
	"slices"
	"strings"
	"time"
)

// ExperimentInfo is a snapshot of one configured experiment, for the control API.
type ExperimentInfo struct {
	Name     string
	Fault    string
	Schedule string
	Window   string
	Paused   bool
	Active   int       // runs of it in place now
	NextFire time.Time // zero before Start, after Shutdown, or if it never fires again
}

// Experiments returns every enabled experiment, sorted by name.
func (r *Runner) Experiments() []ExperimentInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	active := map[string]int{}
	for rn := range r.active {
		active[rn.exp]++
	}
	out := make([]ExperimentInfo, 0, len(r.exps))
	for name, e := range r.exps {
		info := ExperimentInfo{
			Name:     name,
			Fault:    e.cfg.Fault.Type,
			Schedule: e.cfg.Schedule,
			Window:   e.cfg.Window,
			Paused:   e.paused,
			Active:   active[name],
		}
		if r.sched != nil {
			if t, ok := r.sched.NextFire(name); ok {
				info.NextFire = t
			}
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b ExperimentInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// HaltWait is Halt, then waits until every run it ended is reverted and recorded, or ctx
// ends (the reverts go on regardless). It returns how many runs were ended.
func (r *Runner) HaltWait(ctx context.Context, reason string) (int, error) {
	n, err := r.Halt(reason)
	// Once the switch is on no run can be reserved, so the active set is final: every run
	// in it was ended by Halt (or is finishing anyway).
	r.mu.Lock()
	done := make([]chan struct{}, 0, len(r.active))
	for rn := range r.active {
		done = append(done, rn.done)
	}
	r.mu.Unlock()
	for _, d := range done {
		select {
		case <-d:
		case <-ctx.Done():
			return n, err
		}
	}
	return n, err
}
