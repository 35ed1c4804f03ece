package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestRouting: the routes answer only their methods (GET ones HEAD too); another method is a
// 405 with Allow and a JSON error, an unknown path a 404 with a JSON error, and on the network
// the token is checked before either, so nothing about the routes is learnt without it.
func TestRouting(t *testing.T) {
	a := newAgent(t, "1h")
	bearer := "Bearer " + token
	for _, tc := range []struct {
		name         string
		h            http.Handler
		method, path string
		auth         string
		code         int
		allow        string
	}{
		{"HEAD on a GET route", a.local, "HEAD", "/v1/runs", "", http.StatusOK, ""},
		{"HEAD on healthz", a.network, "HEAD", "/healthz", "", http.StatusOK, ""},
		{"DELETE on runs", a.local, "DELETE", "/v1/runs", "", http.StatusMethodNotAllowed, "GET, HEAD"},
		{"POST on a run", a.network, "POST", "/v1/runs/1", bearer, http.StatusMethodNotAllowed, "GET, HEAD"},
		{"GET on resume", a.network, "GET", "/v1/resume", bearer, http.StatusMethodNotAllowed, "POST"},
		{"GET on fire", a.local, "GET", "/v1/experiments/fill/fire", "", http.StatusMethodNotAllowed, "POST"},
		{"PUT on halt", a.local, "PUT", "/v1/halt", "", http.StatusMethodNotAllowed, "GET, HEAD, POST"},
		{"POST on metrics", a.network, "POST", "/metrics", "", http.StatusMethodNotAllowed, "GET, HEAD"},
		{"unknown path", a.network, "GET", "/nope", "", http.StatusNotFound, ""},
		{"unknown /v1 path", a.local, "GET", "/v1/nope", "", http.StatusNotFound, ""},
		{"runs with a slash", a.local, "GET", "/v1/runs/", "", http.StatusNotFound, ""},
		{"unclean path to a route", a.local, "GET", "/v1/x/../runs", "", http.StatusTemporaryRedirect, ""},
		{"unclean path to nothing", a.local, "POST", "/v1/experiments//fire", "", http.StatusTemporaryRedirect, ""},
		{"unknown /v1 path without the token", a.network, "GET", "/v1/nope", "", http.StatusUnauthorized, ""},
		{"wrong method without the token", a.network, "DELETE", "/v1/runs", "", http.StatusUnauthorized, ""},
		{"/v1 without a configured token", a.noToken, "DELETE", "/v1/runs", bearer, http.StatusNotFound, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			w := httptest.NewRecorder()
			tc.h.ServeHTTP(w, req)
			if w.Code != tc.code || w.Header().Get("Allow") != tc.allow {
				t.Fatalf("%d, Allow %q, want %d, Allow %q: %s", w.Code, w.Header().Get("Allow"), tc.code, tc.allow, w.Body)
			}
			if tc.code == http.StatusTemporaryRedirect {
				if loc := w.Header().Get("Location"); loc == "" || loc == tc.path {
					t.Fatalf("redirect to %q", loc)
				}
				return
			}
			if tc.code < 400 {
				return
			}
			var e struct{ Error string }
			if ct := w.Header().Get("Content-Type"); ct != "application/json" || json.Unmarshal(w.Body.Bytes(), &e) != nil || e.Error == "" {
				t.Fatalf("%d error as %q: %s, want a JSON error", w.Code, ct, w.Body)
			}
		})
	}
	if a.r.Halted() || len(a.runs()) != 0 || len(a.fills()) != 0 {
		t.Fatal("a misrouted request changed the agent")
	}
}
