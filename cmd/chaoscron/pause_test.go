package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/journal"
)

// TestTripPausesLive: the real agent, a health endpoint that turns unhealthy once the fault
// is in place: the run is aborted, the experiment pauses itself (max_trips: 1), `journal
// stats` shows it through the agent's socket, `next -c` drops its fires, and `resume NAME`
// brings it back. Meanwhile an experiment whose target is unhealthy from the start never
// injects: its fires are journaled as unhealthy skips.
func TestTripPausesLive(t *testing.T) {
	t.Parallel()
	var failing atomic.Bool
	hurt := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer hurt.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer down.Close()
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`
agent: {listen: "off"}
journal: {path: %[1]s/j.db, record_skips: true}
experiments:
  - name: fill
    schedule: "@every 1s"
    duration: 1h
    fault: {type: disk, path: %[1]s, size: 1MiB, reserve: 1MiB}
    abort_if: {http: "%[2]s", interval: 100ms, failures: 2, max_trips: 1}
  - name: broken
    schedule: "@every 1s"
    duration: 1h
    fault: {type: disk, path: %[1]s/none, size: 1MiB, reserve: 1MiB}
    abort_if: {http: "%[3]s"}
`, dir, hurt.URL, down.URL))
	a := startAgent(t, dir, "-c", cfg)
	defer a.stop()
	eventually(t, 10*time.Second, "a fill file", func() bool { return len(fills(t, dir)) > 0 })
	failing.Store(true) // the fault hurts the service
	stats := func() journal.Stats {
		t.Helper()
		out, errs, code := cli(t, dir, "journal", "stats", "-o", "json", "-c", cfg)
		var st journal.Stats
		if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
			t.Fatalf("journal stats: exit %d %s%s", code, out, errs)
		}
		return st
	}
	eventually(t, 10*time.Second, "fill paused", func() bool { _, ok := stats().Paused["fill"]; return ok })
	if n := len(fills(t, dir)); n != 0 {
		t.Fatalf("%d fill files after the trip", n)
	}
	if p := stats().Paused["fill"]; !strings.Contains(p.Reason, "1 runs in a row aborted by the stop condition") {
		t.Fatalf("pause reason %q", p.Reason)
	}
	out, errs, code := cli(t, dir, "next", "-c", cfg, "--all", "--count", "2")
	if code != 0 || !strings.Contains(out, "paused: the experiment is paused") || strings.Contains(out, "could not") {
		t.Fatalf("next --all while fill is paused (agent running): exit %d\n%s%s", code, out, errs)
	}

	failing.Store(false)
	if out, errs, code := cli(t, dir, "resume", "fill", "-c", cfg); code != 0 || !strings.Contains(out, "fill: resumed") {
		t.Fatalf("resume fill: exit %d %s%s", code, out, errs)
	}
	eventually(t, 10*time.Second, "a fill file after resume", func() bool { return len(fills(t, dir)) > 0 })
	if _, ok := stats().Paused["fill"]; ok {
		t.Fatal("still paused after resume")
	}

	var broken []journal.Record
	for _, r := range listRuns(t, dir, "-c", cfg, "--experiment", "broken") {
		if r.Status != journal.Skipped || !strings.Contains(r.Reason, "stop condition already failing before the fault") {
			t.Fatalf("run of an experiment whose target is down: %s %q", r.Status, r.Reason)
		}
		broken = append(broken, r)
	}
	if len(broken) < 2 {
		t.Fatalf("%d unhealthy skips journaled for broken, want one a second", len(broken))
	}
}
