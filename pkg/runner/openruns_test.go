package runner

import (
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chaoscron/chaoscron/journal"
)

// TestOpenRunsGaugeWithConcurrentRefreshes: refreshOpen coalesces overlapping calls, and the
// gauge must still end at the journal's count once the last caller has returned.
func TestOpenRunsGaugeWithConcurrentRefreshes(t *testing.T) {
	f := newFixture(t, disk("1h"))
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := journal.Record{Experiment: "x", Fault: "disk", Trigger: TriggerFire, StartedAt: time.Now().UTC(),
				Status: journal.Active, Cleanup: journal.CleanupPending}
			if i%2 == 0 {
				rec.Status, rec.Cleanup = journal.Succeeded, journal.CleanupDone
			}
			if err := f.j.Begin(&rec); err != nil {
				t.Error(err)
			}
			f.r.refreshOpen()
		}()
	}
	wg.Wait()
	if v := testutil.ToFloat64(f.m.OpenRuns); v != 20 {
		t.Fatalf("chaos_journal_open_runs = %v after 20 open runs were written, want 20", v)
	}
}
