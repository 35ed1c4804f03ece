// Package control lets the HTTP API drive the runner: Runner adapts *runner.Runner to
// api.Control. It is the one package that knows both, so that neither imports the other:
// the API declares what it needs, the runner knows nothing of HTTP.
package control

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/chaoscron/chaoscron/pkg/api"
	"github.com/chaoscron/chaoscron/pkg/runner"
)

// Runner is a runner as the API's Control.
type Runner struct{ r *runner.Runner }

var _ api.Control = Runner{}

// New returns r as the API's Control.
func New(r *runner.Runner) Runner { return Runner{r} }

// Experiments is every enabled experiment, sorted by name.
func (c Runner) Experiments() []api.Experiment {
	infos := c.r.Experiments()
	out := make([]api.Experiment, 0, len(infos))
	for _, e := range infos {
		out = append(out, api.Experiment{Name: e.Name, Fault: e.Fault, Schedule: e.Schedule, Window: e.Window,
			Paused: e.Paused, Active: e.Active, NextFire: e.NextFire})
	}
	return out
}

// Fire runs the experiment now, as a run triggered through the API.
func (c Runner) Fire(ctx context.Context, name string) (uint64, error) {
	id, err := c.r.Fire(ctx, name, runner.TriggerAPI, time.Time{})
	return id, apiError(err)
}

// SetPaused sets or clears the experiment's persisted pause flag.
func (c Runner) SetPaused(name string, paused bool) error {
	return apiError(c.r.SetPaused(name, paused))
}

// Halt turns the halt switch on and waits, within ctx, for the runs it ended to be reverted.
func (c Runner) Halt(ctx context.Context, reason string) (int, error) {
	return c.r.HaltWait(ctx, reason)
}

// Resume turns the halt switch off.
func (c Runner) Resume() error { return c.r.Resume() }

// Halted reports the halt switch.
func (c Runner) Halted() bool { return c.r.Halted() }

// Recover reverts the open runs no live run owns and sweeps, now.
func (c Runner) Recover(ctx context.Context) (api.RecoverResponse, error) {
	rep, err := c.r.Recover(ctx)
	return api.RecoverResponse{Open: rep.Open, Recovered: rep.Recovered, Failed: rep.Failed, Swept: rep.Swept,
		TookSeconds: rep.Took.Seconds()}, err
}

// Prune prunes the journal by the given limits, or by the config in force where one is nil.
func (c Runner) Prune(_ context.Context, maxRuns *int, maxAge *time.Duration) (api.PruneResponse, error) {
	j := c.r.Config().Journal
	runs, age := j.MaxRuns, j.MaxAge
	if maxRuns != nil {
		runs = *maxRuns
	}
	if maxAge != nil {
		age = *maxAge
	}
	n, err := c.r.Prune(runs, age)
	return api.PruneResponse{Pruned: n, MaxRuns: runs, MaxAge: age.String()}, err
}

// apiError maps the runner's errors onto the ones the API knows.
func apiError(err error) error {
	var skip *runner.SkipError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, runner.ErrUnknown):
		return fmt.Errorf("%w: %w", api.ErrNotFound, err)
	case errors.As(err, &skip):
		return &api.Refused{Reason: skip.Reason, Detail: skip.Detail}
	}
	return err
}
