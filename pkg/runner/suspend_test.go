package runner

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/journal"
)

// TestSuspend: a suspension (the fleet's halt or lost contact) ends every active run at once,
// reverted, and makes every fire a skip with its reason, manual fires too; it is not
// persisted; lifting it lets fires through again.
func TestSuspend(t *testing.T) {
	f := newFixture(t, disk("1h"))
	id, err := f.r.Fire(t.Context(), "fill", TriggerFire, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	f.r.Suspend(ReasonFleet, "fleet state not confirmed for 31s")
	f.r.Wait()
	if len(f.fills()) != 0 {
		t.Fatal("suspension left the fill behind")
	}
	if rec := f.get(id); rec.Status != journal.Aborted || rec.Cleanup != journal.CleanupDone || rec.Reason != "fleet: fleet state not confirmed for 31s" {
		t.Fatalf("suspended run: %s %s %q", rec.Status, rec.Cleanup, rec.Reason)
	}
	_, err = f.r.Fire(t.Context(), "fill", TriggerFire, time.Time{})
	var s *SkipError
	if !errors.As(err, &s) || s.Reason != ReasonFleet || !strings.Contains(s.Detail, "31s") {
		t.Fatalf("Fire while suspended: %v", err)
	}
	// A new detail under the same reason replaces the old.
	f.r.Suspend(ReasonFleet, "fleet state not confirmed for 40s")
	if got := f.r.Suspended(); got == nil || got.Detail != "fleet state not confirmed for 40s" {
		t.Fatalf("Suspended = %+v", got)
	}
	f.r.Suspend("", "")
	if _, err := f.r.Fire(t.Context(), "fill", TriggerFire, time.Time{}); err != nil {
		t.Fatalf("Fire after the suspension was lifted: %v", err)
	}
}
