package api_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzAPI sends random methods, paths, bodies and headers through the real handlers, in
// front of a real runner over a real journal: no request may panic the agent, and no request
// may get a 5xx (every way a request can be wrong is the client's error, a 4xx).
//
//	go test -run '^$' -fuzz FuzzAPI -fuzztime 30s ./pkg/api/
func FuzzAPI(f *testing.F) {
	seeds := []struct {
		method, path string
		body         []byte
		auth         string
		local        bool
	}{
		{"GET", "/v1/runs?status=active&limit=2", nil, "", true},
		{"GET", "/v1/runs/1", nil, "", true},
		{"GET", "/v1/export", nil, "", true},
		{"GET", "/v1/stats", nil, "Bearer " + token, false},
		{"GET", "/v1/experiments", nil, "", true},
		{"POST", "/v1/experiments/fill/fire", nil, "", true},
		{"POST", "/v1/experiments/other/fire", []byte("{}"), "Bearer " + token, false},
		{"POST", "/v1/experiments/fill/pause", nil, "Bearer x", false},
		{"POST", "/v1/halt", []byte(`{"reason":"fuzz"}`), "", true},
		{"POST", "/v1/resume", nil, "Bearer " + token, false},
		{"PUT", "/v1/halt", []byte(`{"reason":`), "", true},
		{"GET", "/v1/runs?since=-1h&limit=1e9", nil, "", true},
		{"GET", "/metrics", nil, "", false},
		{"POST", "/v1/experiments/%2e%2e/fire", []byte("null"), "", true},
		{"POST", "/v1/halt", []byte(`{"reason":"x"}`), "Authorization: Bearer " + token + "\nContent-Type: text/plain\nContent-Length: 3", false},
		{"GET", "/v1/export", nil, "Accept-Encoding: gzip\nRange: bytes=0-10", true},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.body, s.auth, s.local)
	}
	a := newAgent(f, "20ms")
	f.Fuzz(func(t *testing.T, method, path string, body []byte, headers string, local bool) {
		req, err := http.NewRequest(method, "http://agent"+path, bytes.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		// headers is an Authorization value, or lines of "Name: value" headers.
		for _, line := range strings.Split(headers, "\n") {
			if name, value, ok := strings.Cut(line, ": "); ok && name != "" {
				req.Header.Add(name, value)
			} else if line != "" {
				req.Header.Set("Authorization", line)
			}
		}
		h := a.network
		if local {
			h = a.local
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %q (local=%v, headers %q, body %q): %d %s", method, path, local, headers, body, w.Code, w.Body)
		}
	})
}
