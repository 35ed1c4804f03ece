package main

import (
	"fmt"
	"log/slog"

	"github.com/chaoscron/chaoscron/journal"
	"github.com/chaoscron/chaoscron/pkg/config"
	"github.com/chaoscron/chaoscron/pkg/fleet"
	"github.com/chaoscron/chaoscron/pkg/metrics"
	"github.com/chaoscron/chaoscron/pkg/runner"
)

// newFleet joins cfg's fleet group, or returns nil when fleet mode is off. It does not reach
// the API server: an unreachable one means an agent that starts and fires nothing.
func newFleet(cfg *config.Config, agent journal.Agent, m *metrics.Set, log *slog.Logger, onState func(fleet.State)) (*fleet.Fleet, error) {
	if !cfg.Fleet.Enabled {
		return nil, nil
	}
	cs, ns, err := fleet.Client(cfg.Fleet, "chaoscron/"+version)
	if err != nil {
		return nil, err
	}
	fc, pod, err := fleet.Resolve(cfg.Fleet, ns)
	if err != nil {
		return nil, err
	}
	log.Info("fleet mode", "group", fc.Group, "namespace", fc.Namespace, "pod", pod.Name,
		"max_active", fc.MaxActive, "renew", fc.Renew, "stale_after", fc.StaleAfter)
	return fleet.New(fleet.Options{Config: fc, Pod: pod, Agent: agent, Client: cs, Metrics: m,
		Log: log.With("component", "fleet"), OnState: onState})
}

// suspend maps the group's state onto the runner: halted or unconfirmed, nothing fires and
// what is in place is reverted.
func suspend(r *runner.Runner, st fleet.State) {
	if r == nil {
		return // the state arrives before the runner exists: New applies it
	}
	switch {
	case st.Halted:
		r.Suspend("halted", fmt.Sprintf("fleet halted by %s: %s", st.By, st.Reason))
	case !st.Contact:
		r.Suspend(runner.ReasonFleet, st.Detail)
	default:
		r.Suspend("", "")
	}
}
