package api

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// RecoverResponse answers POST /v1/recover: what the agent found open and reverted now, and
// what it swept.
type RecoverResponse struct {
	Open        int      `json:"open"`      // open runs no live run owned: cleanups that had failed
	Recovered   int      `json:"recovered"` // of those, reverted now and closed
	Failed      int      `json:"failed"`    // of those, whose revert failed again (still open)
	Swept       []string `json:"swept"`     // leftovers no run owned, removed
	TookSeconds float64  `json:"took_seconds"`
	Error       string   `json:"error,omitempty"` // why what failed failed
}

// PruneRequest is the body of POST /v1/prune. An omitted limit is the agent's configured
// one; 0 is no limit of that kind.
type PruneRequest struct {
	MaxRuns *int   `json:"max_runs,omitempty"`
	MaxAge  string `json:"max_age,omitempty"` // a duration: "720h"
}

// PruneResponse answers POST /v1/prune: how many closed runs were deleted, by which limits.
type PruneResponse struct {
	Pruned  int    `json:"pruned"`
	MaxRuns int    `json:"max_runs"`
	MaxAge  string `json:"max_age"`
}

// recoverNow is POST /v1/recover: the agent retries its failed cleanups now instead of at
// its next retry, and sweeps. It answers 200 with the report whatever the outcome: the
// request was carried out; "failed" and "error" say what is still in place.
func (s *server) recoverNow(w http.ResponseWriter, r *http.Request) {
	if !readBody(w, r, nil) {
		return
	}
	// Like a fire, it outlives the request: a client that hangs up must not stop a revert
	// half-way.
	rep, err := s.opt.Control.Recover(context.WithoutCancel(r.Context()))
	if err != nil {
		rep.Error = err.Error()
	}
	if rep.Swept == nil {
		rep.Swept = []string{}
	}
	s.opt.Log.Info("recovery through the API", "open", rep.Open, "recovered", rep.Recovered, "failed", rep.Failed,
		"swept", len(rep.Swept), "err", err)
	writeJSON(w, http.StatusOK, rep)
}

// prune is POST /v1/prune {"max_runs": N, "max_age": "720h"}.
func (s *server) prune(w http.ResponseWriter, r *http.Request) {
	var req PruneRequest
	if !readBody(w, r, &req) {
		return
	}
	if req.MaxRuns != nil && *req.MaxRuns < 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("max_runs: must be 0 (no limit) or more, got %d", *req.MaxRuns))
		return
	}
	var maxAge *time.Duration
	if req.MaxAge != "" {
		d, err := time.ParseDuration(req.MaxAge)
		if err != nil || d < 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("max_age: expected a duration of 0 (no limit) or more, like 720h, got %q", req.MaxAge))
			return
		}
		maxAge = &d
	}
	resp, err := s.opt.Control.Prune(r.Context(), req.MaxRuns, maxAge)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, resp)
}
