package journal

import (
	"encoding/json"
	"time"
)

// Status is where a run is in its lifecycle.
type Status string

const (
	Pending   Status = "pending"   // intent committed; the fault may or may not be applied yet
	Active    Status = "active"    // the fault is in place
	Succeeded Status = "succeeded" // held for its duration and reverted
	Failed    Status = "failed"    // injection failed (what was partly applied was reversed)
	Aborted   Status = "aborted"   // ended early: halt, stop condition, shutdown, crash
	Skipped   Status = "skipped"   // a check said no (probability, window, blackout, concurrency)
)

// Cleanup is whether what a run changed has been reversed.
type Cleanup string

const (
	CleanupNone      Cleanup = "none"      // nothing to reverse (skipped, dry run, a kill)
	CleanupPending   Cleanup = "pending"   // must be reversed
	CleanupDone      Cleanup = "done"      // reversed by the agent that applied it
	CleanupFailed    Cleanup = "failed"    // a revert failed; kept open for retry
	CleanupRecovered Cleanup = "recovered" // reversed by a later agent after a crash
)

// Agent identifies the process that wrote a record.
type Agent struct {
	Host     string `json:"host"`
	PID      int    `json:"pid"`
	Instance string `json:"instance"` // random per process start
	Version  string `json:"version"`
}

// Record is one run, as stored (JSON) and as printed by `chaoscron journal … -o json`.
type Record struct {
	ID          uint64          `json:"id"`
	Experiment  string          `json:"experiment"`
	Fault       string          `json:"fault"`
	Params      json.RawMessage `json:"params,omitempty"`
	Trigger     string          `json:"trigger"` // schedule | fire | api | sweep (runner.Trigger*)
	ScheduledAt time.Time       `json:"scheduled_at,omitzero"`
	StartedAt   time.Time       `json:"started_at,omitzero"`
	AppliedAt   time.Time       `json:"applied_at,omitzero"`
	EndedAt     time.Time       `json:"ended_at,omitzero"`
	PlannedEnd  time.Time       `json:"planned_end,omitzero"`
	Status      Status          `json:"status"`
	Cleanup     Cleanup         `json:"cleanup"`
	Undo        json.RawMessage `json:"undo,omitempty"`
	Error       string          `json:"error,omitempty"`
	Reason      string          `json:"reason,omitempty"` // why it was skipped or aborted
	DryRun      bool            `json:"dry_run"`
	Agent       Agent           `json:"agent"`
	// Slot is the fleet slot the run took before its intent (fleet mode only): released
	// after the revert, by this agent or by whichever agent recovers the run.
	Slot *Slot `json:"slot,omitempty"`
}

// Slot names a run's place among the faults a fleet allows at once: the holder key in the
// slots Lease of a Kubernetes namespace.
type Slot struct {
	Namespace string `json:"namespace"`
	Lease     string `json:"lease"`
	Holder    string `json:"holder"`
}

// Open reports whether the run still has something to reverse. Open runs are kept in an
// index so start-up recovery costs O(open runs), not O(journal).
func (r *Record) Open() bool {
	return r.Cleanup == CleanupPending || r.Cleanup == CleanupFailed
}
