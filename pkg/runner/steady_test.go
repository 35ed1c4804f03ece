package runner

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chaoscron/chaoscron/journal"
)

// health is a real HTTP health endpoint that can be turned unhealthy, counting its checks.
type health struct {
	srv     *httptest.Server
	failing atomic.Bool
	checks  atomic.Int32
}

func newHealth(t *testing.T, failing bool) *health {
	h := &health{}
	h.failing.Store(failing)
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h.checks.Add(1)
		if h.failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func skipReason(err error) string {
	var s *SkipError
	if errors.As(err, &s) {
		return s.Reason
	}
	return ""
}

// TestUnhealthyFromStart: a target that is already failing its stop condition gets no fault:
// every fire is a skip (unhealthy), counted and journaled, no intent is written, nothing is
// injected, and these skips are not trips (the experiment does not pause itself).
func TestUnhealthyFromStart(t *testing.T) {
	h := newHealth(t, true)
	f := newFixture(t, `
agent: {listen: "off"}
journal: {record_skips: true}
experiments:
  - name: fill
    schedule: "@every 1h"
    duration: 1h
    fault: {type: disk, path: DIR, size: 1MiB, reserve: 1MiB}
    abort_if: {http: "`+h.srv.URL+`/healthz", interval: 100ms, failures: 2, max_trips: 1}
`)
	const fires = 4
	for i := range fires {
		trigger := TriggerSchedule
		if i == fires-1 {
			trigger = TriggerFire // a person asking does not override an unhealthy target
		}
		_, err := f.r.Fire(t.Context(), "fill", trigger, time.Time{})
		if skipReason(err) != "unhealthy" || !strings.Contains(err.Error(), "status 503") {
			t.Fatalf("fire %d (%s): %v, want an unhealthy skip", i, trigger, err)
		}
	}
	f.r.Wait()
	if n := len(f.fills()); n != 0 {
		t.Fatalf("%d fill files: a fault landed on an unhealthy target", n)
	}
	if n := h.checks.Load(); n != fires {
		t.Errorf("%d checks for %d fires, want one before each", n, fires)
	}
	recs := mustList(t, f.j)
	if len(recs) != fires {
		t.Fatalf("%d records, want %d skips", len(recs), fires)
	}
	for _, rec := range recs {
		if rec.Status != journal.Skipped || rec.Cleanup != journal.CleanupNone || rec.Undo != nil ||
			!strings.HasPrefix(rec.Reason, "stop condition already failing before the fault: GET "+h.srv.URL) {
			t.Errorf("record %d: status %s cleanup %s undo %s reason %q", rec.ID, rec.Status, rec.Cleanup, rec.Undo, rec.Reason)
		}
	}
	if v := testutil.ToFloat64(f.m.Skips.WithLabelValues("fill", "unhealthy")); v != fires {
		t.Errorf("chaos_skips_total{reason=unhealthy} = %v, want %d", v, fires)
	}
	if f.r.Experiments()[0].Paused {
		t.Error("unhealthy skips paused the experiment; only aborted runs are trips")
	}

	// Once healthy again, the next fire injects.
	h.failing.Store(false)
	if _, err := f.r.Fire(t.Context(), "fill", TriggerSchedule, time.Time{}); err != nil {
		t.Fatalf("fire once healthy: %v", err)
	}
	if n := len(f.fills()); n != 1 {
		t.Fatalf("%d fill files once healthy, want 1", n)
	}
}

// TestTripsPause: runs aborted by their stop condition max_trips times in a row pause the
// experiment, persistently (journal, metric, a restart), until resumed; a run that holds to
// its end in between resets the count.
func TestTripsPause(t *testing.T) {
	h := newHealth(t, false)
	yaml := `
agent: {listen: "off"}
experiments:
  - name: fill
    schedule: "@every 1h"
    duration: 700ms
    fault: {type: disk, path: DIR, size: 1MiB, reserve: 1MiB}
    abort_if: {http: "` + h.srv.URL + `/healthz", interval: 100ms, failures: 2, max_trips: 2}
`
	f := newFixture(t, yaml)
	// run fires once while healthy; with breaks, the endpoint fails once the fault is in
	// place (the fault "hurts" the service). It returns the run's final record.
	run := func(breaks bool) journal.Record {
		t.Helper()
		h.failing.Store(false)
		id, err := f.r.Fire(t.Context(), "fill", TriggerSchedule, time.Time{})
		if err != nil {
			t.Fatalf("fire: %v", err)
		}
		h.failing.Store(breaks)
		f.r.Wait()
		return f.get(id)
	}
	paused := func() bool {
		t.Helper()
		return f.r.Experiments()[0].Paused
	}
	for i, step := range []struct {
		breaks     bool
		wantStatus journal.Status
		wantPaused bool
	}{
		{true, journal.Aborted, false},    // trip 1
		{false, journal.Succeeded, false}, // held to its end: the count starts again
		{true, journal.Aborted, false},    // trip 1
		{true, journal.Aborted, true},     // trip 2 = max_trips
	} {
		rec := run(step.breaks)
		if rec.Status != step.wantStatus || paused() != step.wantPaused {
			t.Fatalf("step %d: status %s (reason %q), paused %v; want %s, paused %v",
				i, rec.Status, rec.Reason, paused(), step.wantStatus, step.wantPaused)
		}
	}
	h.failing.Store(false)
	if _, err := f.r.Fire(t.Context(), "fill", TriggerSchedule, time.Time{}); skipReason(err) != "paused" {
		t.Fatalf("scheduled fire after the pause: %v, want a paused skip", err)
	}
	if v := testutil.ToFloat64(f.m.Paused.WithLabelValues("fill")); v != 1 {
		t.Errorf("chaos_experiment_paused = %v, want 1", v)
	}
	if v := testutil.ToFloat64(f.m.Trips.WithLabelValues("fill")); v != 3 {
		t.Errorf("chaos_stop_condition_trips_total = %v, want 3 (the run held to its end is no trip)", v)
	}
	st, err := f.j.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := st.Paused["fill"]; !ok || !strings.Contains(p.Reason, "2 runs in a row aborted by the stop condition") {
		t.Fatalf("journal stats paused = %+v", st.Paused)
	}

	// A restart keeps the pause.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := f.r.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	f.j.Close()
	f.open(yaml)
	if !paused() || testutil.ToFloat64(f.m.Paused.WithLabelValues("fill")) != 1 {
		t.Fatal("pause lost across a restart")
	}
	if err := f.r.SetPaused("fill", false); err != nil {
		t.Fatal(err)
	}
	if paused() || testutil.ToFloat64(f.m.Paused.WithLabelValues("fill")) != 0 {
		t.Fatal("resume did not clear the pause")
	}
	if rec := run(false); rec.Status != journal.Succeeded {
		t.Fatalf("after resume: %s %q", rec.Status, rec.Reason)
	}
}

// TestHaltOnTrip: with agent.abort_if.halt_on_trip, a trip halts the whole agent, persistently.
func TestHaltOnTrip(t *testing.T) {
	h := newHealth(t, false)
	f := newFixture(t, `
agent:
  listen: "off"
  abort_if: {http: "`+h.srv.URL+`/healthz", interval: 100ms, failures: 2, halt_on_trip: true}
experiments:
  - {name: fill, schedule: "@every 1h", duration: 1h, fault: {type: disk, path: DIR, size: 1MiB, reserve: 1MiB}}
  - {name: other, schedule: "@every 1h", duration: 1h, fault: {type: disk, path: DIR, size: 1MiB, reserve: 1MiB}}
`)
	if _, err := f.r.Fire(t.Context(), "fill", TriggerSchedule, time.Time{}); err != nil {
		t.Fatal(err)
	}
	h.failing.Store(true)
	f.r.Wait()
	if !f.r.Halted() {
		t.Fatal("agent not halted by a trip with halt_on_trip")
	}
	halted, reason, _, err := f.j.Halted()
	if err != nil || !halted || !strings.Contains(reason, "experiment fill: stop condition") {
		t.Fatalf("journal halt switch: %v %q %v", halted, reason, err)
	}
	h.failing.Store(false)
	if _, err := f.r.Fire(t.Context(), "other", TriggerSchedule, time.Time{}); skipReason(err) != "halted" {
		t.Fatalf("fire of another experiment after the trip: %v, want a halted skip", err)
	}
}
