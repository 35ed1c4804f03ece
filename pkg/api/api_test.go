package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/journal"
	"github.com/chaoscron/chaoscron/pkg/api"
	"github.com/chaoscron/chaoscron/pkg/control"
	"github.com/chaoscron/chaoscron/pkg/runner"
)

// mutations are every mutating call, with a body each accepts.
var mutations = []struct{ path, body string }{
	{"/v1/experiments/fill/fire", ""},
	{"/v1/experiments/fill/pause", ""},
	{"/v1/experiments/fill/resume", "{}"},
	{"/v1/halt", `{"reason": "test"}`},
	{"/v1/resume", ""},
	{"/v1/recover", ""},
	{"/v1/prune", `{"max_runs": 0}`},
}

// TestUnauthorizedChangesNothing: on the network listener every mutating call without the
// right bearer token is a 401, and neither the journal, the halt switch nor the pause flags
// change.
func TestUnauthorizedChangesNothing(t *testing.T) {
	a := newAgent(t, "1h")
	for _, auth := range []struct{ name, header string }{
		{"no header", ""},
		{"wrong token", "Bearer nope"},
		{"token prefix", "Bearer " + token[:3]},
		{"token with suffix", "Bearer " + token + "x"},
		{"basic scheme", "Basic " + token},
		{"bare token", token},
	} {
		for _, m := range mutations {
			t.Run(auth.name+" "+m.path, func(t *testing.T) {
				var hdr []string
				if auth.header != "" {
					hdr = []string{"Authorization", auth.header}
				}
				code, body := do(a.network, http.MethodPost, m.path, m.body, hdr...)
				if code != http.StatusUnauthorized || !strings.Contains(body, `"error"`) {
					t.Fatalf("%s: %d %s, want 401 with a JSON error", m.path, code, body)
				}
			})
		}
	}
	if recs := a.runs(); len(recs) != 0 {
		t.Fatalf("unauthorized calls wrote %d runs", len(recs))
	}
	if len(a.fills()) != 0 {
		t.Fatal("unauthorized fire injected a fault")
	}
	if halted, _, _, err := a.j.Halted(); halted || err != nil || a.r.Halted() {
		t.Fatalf("unauthorized halt: journal halted=%v (%v), runner halted=%v", halted, err, a.r.Halted())
	}
	for _, e := range a.r.Experiments() {
		if e.Paused {
			t.Fatalf("unauthorized pause paused %s", e.Name)
		}
	}

	// The right token works, for the same calls.
	code, body := do(a.network, http.MethodPost, "/v1/halt", `{"reason":"drill"}`, "Authorization", "Bearer "+token)
	if code != http.StatusOK || !a.r.Halted() {
		t.Fatalf("authorized halt: %d %s", code, body)
	}
	if code, body = do(a.network, http.MethodPost, "/v1/resume", "", "Authorization", "bearer "+token); code != http.StatusOK || a.r.Halted() {
		t.Fatalf("authorized resume: %d %s", code, body)
	}
}

// TestReadsNeedToken: on the network listener a configured token guards every /v1 route,
// reads included (a run record carries target command lines), while metrics and health
// stay open; the socket needs no token.
func TestReadsNeedToken(t *testing.T) {
	a := newAgent(t, "1h")
	if _, err := a.r.Fire(t.Context(), "other", runner.TriggerAPI, time.Time{}); err != nil {
		t.Fatal(err)
	}
	reads := []string{"/v1/runs", "/v1/runs?limit=1", "/v1/runs/1", "/v1/stats", "/v1/export",
		"/v1/experiments", "/v1/halt", "/v1", "/v1/nope"}
	for _, path := range reads {
		for _, hdr := range [][]string{nil, {"Authorization", "Bearer nope"}, {"Authorization", "Basic " + token}} {
			code, body := do(a.network, http.MethodGet, path, "", hdr...)
			if code != http.StatusUnauthorized || strings.Contains(body, "fill") || strings.Contains(body, "other") {
				t.Errorf("GET %s with %q: %d %.100s, want 401 and nothing about the agent", path, hdr, code, body)
			}
		}
	}
	for _, path := range reads[:7] {
		if code, body := do(a.network, http.MethodGet, path, "", "Authorization", "Bearer "+token); code != http.StatusOK {
			t.Errorf("GET %s with the token: %d %.100s", path, code, body)
		}
		if code, body := do(a.local, http.MethodGet, path, ""); code != http.StatusOK {
			t.Errorf("GET %s on the socket: %d %.100s", path, code, body)
		}
	}
	for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
		if code, _ := do(a.network, http.MethodGet, path, ""); code != http.StatusOK {
			t.Errorf("GET %s without a token: %d, want 200", path, code)
		}
	}
}

// TestNoTokenNoControl: without a configured token the network listener serves metrics and
// health only; the /v1 routes do not exist there, read-only ones included.
func TestNoTokenNoControl(t *testing.T) {
	a := newAgent(t, "1h")
	for _, tc := range []struct{ method, path string }{
		{"POST", "/v1/halt"}, {"POST", "/v1/resume"}, {"POST", "/v1/experiments/fill/fire"},
		{"POST", "/v1/experiments/fill/pause"}, {"GET", "/v1/experiments"}, {"GET", "/v1/runs"},
	} {
		if code, body := do(a.noToken, tc.method, tc.path, "", "Authorization", "Bearer "+token); code != http.StatusNotFound {
			t.Errorf("%s %s without a configured token: %d %s, want 404", tc.method, tc.path, code, body)
		}
	}
	if code, _ := do(a.noToken, "GET", "/metrics", ""); code != http.StatusOK {
		t.Errorf("/metrics: %d", code)
	}
	if code, _ := do(a.noToken, "GET", "/healthz", ""); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
	if a.r.Halted() || len(a.runs()) != 0 {
		t.Fatal("a call without a configured token changed the agent")
	}
}

// TestBadRequests: oversized, malformed and unexpected bodies and parameters are 4xx with a
// JSON error, and change nothing.
func TestBadRequests(t *testing.T) {
	a := newAgent(t, "1h")
	auth := []string{"Authorization", "Bearer " + token}
	big := `{"reason": "` + strings.Repeat("x", api.MaxBody) + `"}`
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
	}{
		{"oversized halt", "POST", "/v1/halt", big, http.StatusRequestEntityTooLarge},
		{"oversized fire", "POST", "/v1/experiments/fill/fire", "[" + strings.Repeat(" ", api.MaxBody) + "]", http.StatusRequestEntityTooLarge},
		{"malformed halt", "POST", "/v1/halt", `{"reason": `, http.StatusBadRequest},
		{"halt not an object", "POST", "/v1/halt", `"stop"`, http.StatusBadRequest},
		{"halt unknown field", "POST", "/v1/halt", `{"reason": "x", "force": true}`, http.StatusBadRequest},
		{"halt trailing data", "POST", "/v1/halt", `{"reason": "x"} {}`, http.StatusBadRequest},
		{"halt reason too long", "POST", "/v1/halt", `{"reason": "` + strings.Repeat("x", 2000) + `"}`, http.StatusBadRequest},
		{"fire with a body", "POST", "/v1/experiments/fill/fire", `{"duration": "1h"}`, http.StatusBadRequest},
		{"fire unknown", "POST", "/v1/experiments/nope/fire", "", http.StatusNotFound},
		{"pause unknown", "POST", "/v1/experiments/nope/pause", "", http.StatusNotFound},
		{"GET on halt-only POST route", "GET", "/v1/resume", "", http.StatusMethodNotAllowed},
		{"DELETE on runs", "DELETE", "/v1/runs", "", http.StatusMethodNotAllowed},
		{"run id not a number", "GET", "/v1/runs/abc", "", http.StatusBadRequest},
		{"run id negative", "GET", "/v1/runs/-1", "", http.StatusBadRequest},
		{"run id overflow", "GET", "/v1/runs/99999999999999999999", "", http.StatusBadRequest},
		{"missing run", "GET", "/v1/runs/42", "", http.StatusNotFound},
		{"bad status", "GET", "/v1/runs?status=exploded", "", http.StatusBadRequest},
		{"bad limit", "GET", "/v1/runs?limit=-3", "", http.StatusBadRequest},
		{"bad since", "GET", "/v1/runs?since=yesterday", "", http.StatusBadRequest},
		{"unknown parameter", "GET", "/v1/runs?experimnet=fill", "", http.StatusBadRequest},
		{"repeated parameter", "GET", "/v1/runs?limit=1&limit=2", "", http.StatusBadRequest},
		{"unknown endpoint", "GET", "/v1/nope", "", http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(a.network, tc.method, tc.path, tc.body, auth...)
			var e struct{ Error string }
			if code != tc.code || json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
				t.Fatalf("%d %.200s, want %d with a JSON error", code, body, tc.code)
			}
		})
	}
	if a.r.Halted() || len(a.runs()) != 0 || len(a.fills()) != 0 {
		t.Fatal("a bad request changed the agent")
	}
}

// TestControl drives a real runner through the socket handler: fire, refuse, pause, halt
// (which reverts at once), refuse while halted, resume.
func TestControl(t *testing.T) {
	a := newAgent(t, "1h")
	code, body := do(a.local, "GET", "/v1/experiments", "")
	var exps []api.Experiment
	if code != 200 || json.Unmarshal([]byte(body), &exps) != nil || len(exps) != 2 || exps[0].Name != "fill" ||
		exps[0].Fault != "disk" || exps[0].Schedule != "@every 1h" || exps[0].NextFire.Before(time.Now()) {
		t.Fatalf("GET /v1/experiments: %d %s", code, body)
	}

	code, body = do(a.local, "POST", "/v1/experiments/fill/fire", "")
	var rec journal.Record
	if code != http.StatusCreated || json.Unmarshal([]byte(body), &rec) != nil || rec.Status != journal.Active || rec.Trigger != "api" {
		t.Fatalf("fire: %d %s", code, body)
	}
	if len(a.fills()) != 1 {
		t.Fatalf("after fire: %d fill files", len(a.fills()))
	}
	code, body = do(a.local, "POST", "/v1/experiments/fill/fire", "")
	if code != http.StatusConflict || !strings.Contains(body, `"reason":"concurrency"`) {
		t.Fatalf("second fire: %d %s, want 409 concurrency", code, body)
	}

	code, body = do(a.local, "POST", "/v1/experiments/other/pause", "")
	var e api.Experiment
	if code != 200 || json.Unmarshal([]byte(body), &e) != nil || !e.Paused || e.Name != "other" {
		t.Fatalf("pause: %d %s", code, body)
	}

	start := time.Now()
	code, body = do(a.local, "POST", "/v1/halt", `{"reason": "incident 42"}`)
	if code != 200 || !strings.Contains(body, `"ended":1`) {
		t.Fatalf("halt: %d %s", code, body)
	}
	// Halt answers once the faults it ended are reverted.
	if n := len(a.fills()); n != 0 {
		t.Fatalf("halt answered after %v with %d fill files still there", time.Since(start), n)
	}
	got, err := a.j.Get(rec.ID)
	if err != nil || got.Status != journal.Aborted || got.Cleanup != journal.CleanupDone || !strings.Contains(got.Reason, "incident 42") {
		t.Fatalf("run after halt: %+v %v", got, err)
	}
	if halted, reason, _, _ := a.j.Halted(); !halted || reason != "incident 42" {
		t.Fatalf("halt not persisted: %v %q", halted, reason)
	}
	code, body = do(a.local, "POST", "/v1/experiments/other/fire", "")
	if code != http.StatusConflict || !strings.Contains(body, `"reason":"halted"`) {
		t.Fatalf("fire while halted: %d %s", code, body)
	}
	if code, body = do(a.local, "GET", "/v1/halt", ""); code != 200 || !strings.Contains(body, `"halted":true`) {
		t.Fatalf("GET /v1/halt: %d %s", code, body)
	}
	if code, body = do(a.local, "POST", "/v1/resume", ""); code != 200 || a.r.Halted() {
		t.Fatalf("resume: %d %s", code, body)
	}

	// The journal routes see all of it.
	code, body = do(a.local, "GET", "/v1/runs?experiment=fill&status=aborted&since=1h&limit=5", "")
	var recs []journal.Record
	if code != 200 || json.Unmarshal([]byte(body), &recs) != nil || len(recs) != 1 || recs[0].ID != rec.ID {
		t.Fatalf("GET /v1/runs: %d %s", code, body)
	}
	code, body = do(a.local, "GET", "/v1/stats", "")
	var st journal.Stats
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil || st.Runs != 1 || st.Halted {
		t.Fatalf("GET /v1/stats: %d %s", code, body)
	}
	code, body = do(a.local, "GET", "/v1/export", "")
	if code != 200 || strings.Count(body, "\n") != 1 || !strings.HasPrefix(body, `{"id":`) {
		t.Fatalf("GET /v1/export: %d %s", code, body)
	}
}

// TestNotReady: until start-up recovery has finished nothing may fire, from the API either.
func TestNotReady(t *testing.T) {
	a := newAgent(t, "1h")
	h := api.Handler(api.Options{Journal: a.j, Control: control.New(a.r), Local: true,
		Ready: func() error { return errTest("recovering") }})
	for _, m := range mutations {
		if code, body := do(h, "POST", m.path, m.body); code != http.StatusServiceUnavailable {
			t.Fatalf("POST %s before ready: %d %s", m.path, code, body)
		}
	}
	if code, _ := do(h, "GET", "/v1/runs", ""); code != http.StatusOK {
		t.Fatalf("reading the journal before ready: %d", code)
	}
	if len(a.fills()) != 0 {
		t.Fatal("fired before ready")
	}
}

type errTest string

func (e errTest) Error() string { return string(e) }
