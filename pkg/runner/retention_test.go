package runner

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chaoscron/chaoscron/journal"
	"github.com/chaoscron/chaoscron/pkg/config"
)

// TestKeepJournal: the upkeep loop prunes to the config in force — a reloaded one too —
// never deletes an open run, and keeps chaos_journal_size_bytes set.
func TestKeepJournal(t *testing.T) {
	yaml := func(maxRuns int) string {
		return strings.Replace(disk("1h"), "agent:", fmt.Sprintf("journal: {max_runs: %d}\nagent:", maxRuns), 1)
	}
	f := newFixture(t, yaml(3))
	open, err := f.r.Fire(t.Context(), "fill", TriggerFire, time.Time{}) // the oldest run, and open
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for range 5 {
		rec := journal.Record{Experiment: "fill", Fault: "disk", Trigger: TriggerFire, StartedAt: now, EndedAt: now,
			Status: journal.Succeeded, Cleanup: journal.CleanupDone}
		if err := f.j.Begin(&rec); err != nil {
			t.Fatal(err)
		}
	}
	runs := func() (n int, hasOpen bool) {
		recs, err := f.j.List(journal.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			hasOpen = hasOpen || r.ID == open
		}
		return len(recs), hasOpen
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { f.r.KeepJournal(ctx, 20*time.Millisecond, 10*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()

	wait := func(want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			n, hasOpen := runs()
			if !hasOpen {
				t.Fatalf("the open run %d was pruned", open)
			}
			if n == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d runs in the journal, want %d", n, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	wait(3)
	if v := testutil.ToFloat64(f.m.JournalBytes); v <= 0 {
		t.Fatalf("chaos_journal_size_bytes = %v, want the file's size", v)
	}
	cfg, err := config.Parse([]byte(strings.ReplaceAll(yaml(1), "DIR", f.dir)), "test.yaml", map[string]any{"journal.path": f.jp})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.r.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	wait(1) // only the open run: closed runs go first, open ones never
}
