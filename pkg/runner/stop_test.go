package runner

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/journal"
)

// TestStopCondition: a health endpoint that starts failing while a fault is active ends the
// run within interval × failures (+ slack), reverts the fault, and journals why.
func TestStopCondition(t *testing.T) {
	var failing atomic.Bool
	var checks atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		checks.Add(1)
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	const interval, failures = 200 * time.Millisecond, 3
	f := newFixture(t, `
agent: {listen: "off"}
experiments:
  - name: fill
    schedule: "@every 1h"
    duration: 1h
    fault: {type: disk, path: DIR, size: 1MiB, reserve: 1MiB}
    abort_if: {http: "`+srv.URL+`/healthz", interval: 200ms, failures: 3, timeout: 1s}
`)
	id, err := f.r.Fire(t.Context(), "fill", TriggerFire, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	// Healthy checks leave the fault alone.
	time.Sleep(3 * interval)
	if n := len(f.fills()); n != 1 || checks.Load() < 2 {
		t.Fatalf("while healthy: %d fill files after %d checks", n, checks.Load())
	}
	failing.Store(true)
	start := time.Now()
	for len(f.fills()) > 0 {
		if time.Since(start) > interval*failures+time.Second {
			t.Fatalf("fault still in place %v after the endpoint started failing", time.Since(start))
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("reverted %v after the endpoint started failing (interval %v × %d failures)", time.Since(start), interval, failures)
	f.r.Wait()
	rec := f.get(id)
	if rec.Status != journal.Aborted || rec.Cleanup != journal.CleanupDone ||
		!strings.HasPrefix(rec.Reason, "stop condition: GET "+srv.URL+"/healthz failed 3 times") || !strings.Contains(rec.Reason, "status 503") {
		t.Fatalf("record: status %s cleanup %s reason %q", rec.Status, rec.Cleanup, rec.Reason)
	}
}

// TestStopConditionUnreachable: an endpoint that stops answering at all counts as failing.
func TestStopConditionUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	url := srv.URL
	f := newFixture(t, `
agent:
  listen: "off"
  abort_if: {http: "`+url+`", interval: 100ms, failures: 2, timeout: 200ms}
experiments:
  - {name: fill, schedule: "@every 1h", duration: 1h, fault: {type: disk, path: DIR, size: 1MiB, reserve: 1MiB}}
`)
	id, err := f.r.Fire(t.Context(), "fill", TriggerFire, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	srv.Close() // nothing listens there any more
	done := make(chan struct{})
	go func() { f.r.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("run not ended by agent.abort_if with an unreachable endpoint")
	}
	rec := f.get(id)
	if rec.Status != journal.Aborted || !strings.Contains(rec.Reason, "failed 2 times") || len(f.fills()) != 0 {
		t.Fatalf("record: status %s reason %q, %d fills", rec.Status, rec.Reason, len(f.fills()))
	}
}
