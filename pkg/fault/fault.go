// Package fault defines what a fault is to chaoscron: something that plans a change to the
// system, applies it, and reverses it again from a serialisable undo description.
//
// Every fault lives in its own subpackage (cpu, memory, process, network, disk, request) and
// registers itself by name in init(), the way toxiproxy's toxics do. A fault subpackage imports
// this package and what faults share under fault/internal only: never a sibling, never config
// or journal.
package fault

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"regexp"
)

// ErrSkip, wrapped in an error from Plan, means there is nothing to do this time (no process
// matched and the experiment says ignore_missing): the run is recorded as skipped, not failed.
var ErrSkip = errors.New("nothing to do")

// Undo is a fault's own description of what it changed (or is about to change), as JSON.
// It is written to the journal before the system is touched, so it must hold everything a
// different agent process needs to reverse the fault after a crash: paths, pids with their
// create times, interface and namespace names, qdisc handles — never pointers or live handles.
type Undo = json.RawMessage

// Fault is one configured fault, built by a Factory from validated parameters.
//
// The runner drives it through a write-ahead lifecycle:
//
//	plan := f.Plan(ctx, run)      // decide what will change; touch nothing
//	journal.Begin(plan)           // committed (fsync) before anything changes
//	undo := f.Inject(ctx, plan)   // change the system
//	... hold ...
//	f.Revert(ctx, undo)           // reverse it
//
// Revert must be idempotent ("already gone" is success) and must work in a process that never
// called Inject, from the undo alone: that is how start-up recovery reverses what a crashed
// agent left behind. Revert only ever removes what chaoscron itself created.
type Fault interface {
	// Plan decides what Inject will change and returns it as an undo, without changing the
	// system. run is the run's identifier, for names that must be unique to the run.
	Plan(ctx context.Context, run string) (Undo, error)
	// Inject applies the fault described by plan and returns the undo of what was really
	// applied (plan itself if nothing was learnt on the way). It returns once the fault is in
	// place; faults that keep working (a CPU burn, a memory ramp) do so in the background until
	// Revert. On error Inject must have reversed whatever it applied before returning, and the
	// returned undo (which may be nil) still describes anything it could not reverse.
	Inject(ctx context.Context, plan Undo) (Undo, error)
	// Revert reverses the fault described by undo. It must be idempotent and safe to call
	// with a plan whose Inject never ran, partly ran, or ran in another process.
	Revert(ctx context.Context, undo Undo) error
}

// Sweeper is implemented by faults that can find what chaoscron created even when the journal
// has lost track of it (a wiped journal file), e.g. netem qdiscs carrying chaoscron's handle.
// Sweep removes every such leftover that none of the given undos (the runs still active)
// owns, and returns a human-readable description of each thing it removed.
type Sweeper interface {
	Sweep(ctx context.Context, keep []Undo) ([]string, error)
}

// Describer is implemented by faults that can say in one line what they will do, for logs
// and dry-run output ("netem delay 200ms on eth0").
type Describer interface {
	Describe() string
}

// Claimer is implemented by faults that take something no other run may take at the same
// time (the http fault: a port's inbound connections). Claims names each such thing, in
// words a user recognises ("http port 8080 in the agent's network namespace"); the config
// refuses two enabled experiments that claim the same one.
type Claimer interface {
	Claims() []string
}

// Params are a fault's parameters as they come from the config: the fault's YAML mapping
// without its "type" key.
type Params = map[string]any

// Env is what a fault knows about the world it runs in. Host paths travel here rather than
// in globals so a fault can be pointed at a fixture tree, a network namespace or a VM.
type Env struct {
	// Proc is the procfs root ("/proc" unless testing).
	Proc string
	// Sys is the sysfs root ("/sys" unless testing).
	Sys string
	// Self is the agent's own pid, always protected.
	Self int
	// Protect are extra process name/cmdline patterns that must never be touched.
	Protect []*regexp.Regexp
	// ListenPort is the agent's own HTTP port (0 if none), kept free of network faults by default.
	ListenPort int
	// Seed seeds any random choice a fault makes (which processes to kill); 0 means random.
	Seed uint64
	// Log receives the fault's own log lines.
	Log *slog.Logger
	// Observe, if set, counts events of the fault's own work (the http fault: "seen",
	// "aborted", "delayed" per request). The runner sets it per experiment, bound to that
	// experiment's metric; it may be called from many goroutines.
	Observe func(event string)
}

// WithDefaults returns env with empty fields set to the real host's values.
func (e Env) WithDefaults() Env {
	if e.Proc == "" {
		e.Proc = "/proc"
	}
	if e.Sys == "" {
		e.Sys = "/sys"
	}
	if e.Log == nil {
		e.Log = slog.New(slog.DiscardHandler)
	}
	return e
}
