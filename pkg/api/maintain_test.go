package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/journal"
	"github.com/chaoscron/chaoscron/pkg/api"
	"github.com/chaoscron/chaoscron/pkg/fault"
	"github.com/chaoscron/chaoscron/pkg/runner"
)

// TestRecoverRoute: POST /v1/recover reverts, now, a fault left in place by another agent
// instance, records it, and answers what it did.
func TestRecoverRoute(t *testing.T) {
	a := newAgent(t, "1h")
	// Another instance's run, in place and open: what a crashed agent leaves behind.
	ghost, err := runner.New(runner.Options{Config: a.r.Config(), Journal: a.j,
		Env: fault.Env{Self: os.Getpid()}, Agent: journal.Agent{Instance: "gone", PID: os.Getpid()}})
	if err != nil {
		t.Fatal(err)
	}
	id, err := ghost.Fire(t.Context(), "fill", runner.TriggerFire, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = ghost.Shutdown(ctx)
	})
	if len(a.fills()) != 1 {
		t.Fatal("no fill in place")
	}

	code, body := do(a.network, http.MethodPost, "/v1/recover", "", "Authorization", "Bearer "+token)
	var rr api.RecoverResponse
	if code != http.StatusOK || json.Unmarshal([]byte(body), &rr) != nil {
		t.Fatalf("POST /v1/recover: %d %s", code, body)
	}
	if rr.Open != 1 || rr.Recovered != 1 || rr.Failed != 0 || rr.Error != "" || rr.Swept == nil {
		t.Fatalf("POST /v1/recover answered %s; want 1 open, 1 recovered, swept []", body)
	}
	if n := len(a.fills()); n != 0 {
		t.Fatalf("%d fills left after recover", n)
	}
	if rec, err := a.j.Get(id); err != nil || rec.Cleanup != journal.CleanupRecovered {
		t.Fatalf("run %d after recover: cleanup %s (%v), want recovered", id, rec.Cleanup, err)
	}
	// Nothing left: a second call finds nothing open.
	if code, body := do(a.local, http.MethodPost, "/v1/recover", ""); code != http.StatusOK ||
		json.Unmarshal([]byte(body), &rr) != nil || rr.Open != 0 {
		t.Fatalf("second POST /v1/recover: %d %s", code, body)
	}
}

// TestPruneRoute: POST /v1/prune deletes closed runs by the limits given, or by the
// agent's configured ones, never an open run, and answers how many it deleted and by which
// limits; bad limits are a 400 that deletes nothing.
func TestPruneRoute(t *testing.T) {
	a := newAgent(t, "1h")
	open, err := a.r.Fire(t.Context(), "fill", runner.TriggerAPI, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for range 4 {
		rec := journal.Record{Experiment: "other", Fault: "disk", StartedAt: now, EndedAt: now,
			Status: journal.Succeeded, Cleanup: journal.CleanupDone}
		if err := a.j.Begin(&rec); err != nil {
			t.Fatal(err)
		}
	}
	for _, body := range []string{`{"max_runs": -1}`, `{"max_age": "soon"}`, `{"max_age": "-1h"}`, `{"max_runs": "2"}`, `{"keep": 2}`} {
		if code, resp := do(a.local, http.MethodPost, "/v1/prune", body); code != http.StatusBadRequest {
			t.Errorf("POST /v1/prune %s: %d %s, want 400", body, code, resp)
		}
	}
	if n := len(a.runs()); n != 5 {
		t.Fatalf("%d runs after bad prunes, want 5", n)
	}

	var pr api.PruneResponse
	code, body := do(a.local, http.MethodPost, "/v1/prune", "")
	if code != http.StatusOK || json.Unmarshal([]byte(body), &pr) != nil || pr.Pruned != 0 || pr.MaxRuns != 10000 || pr.MaxAge != "720h0m0s" {
		t.Fatalf("POST /v1/prune by the configured limits: %d %s", code, body)
	}
	code, body = do(a.network, http.MethodPost, "/v1/prune", `{"max_runs": 2}`, "Authorization", "Bearer "+token)
	if code != http.StatusOK || json.Unmarshal([]byte(body), &pr) != nil || pr.Pruned != 3 || pr.MaxRuns != 2 {
		t.Fatalf("POST /v1/prune max_runs 2: %d %s; want 3 pruned", code, body)
	}
	recs := a.runs()
	if len(recs) != 2 || (recs[0].ID != open && recs[1].ID != open) {
		t.Fatalf("after prune: %+v; want 2 runs, the open one among them", recs)
	}
}
