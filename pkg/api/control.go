package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/chaoscron/chaoscron/journal"
)

// ErrNotFound is what Control returns (wrapped) for an experiment that is not configured.
var ErrNotFound = errors.New("not found")

// Refused is a fire that the agent's state refused: the halt switch, a blackout, concurrency,
// max_active. It is the agent saying no, not a failure: 409.
type Refused struct {
	Reason string // short label: halted, blackout, concurrency, max_active, …
	Detail string
}

func (e *Refused) Error() string { return "refused (" + e.Reason + "): " + e.Detail }

// maxReason bounds a halt reason: it is stored in the journal and logged.
const maxReason = 1024

// HaltRequest is the body of POST /v1/halt.
type HaltRequest struct {
	Reason string `json:"reason"`
}

// HaltResponse answers POST /v1/halt and POST /v1/resume.
type HaltResponse struct {
	Halted bool `json:"halted"`
	Ended  int  `json:"ended,omitempty"` // runs ended by this halt
}

func (s *server) controlRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/experiments", s.experiments)
	mux.HandleFunc("POST /v1/experiments/{name}/fire", s.mutating(s.fire))
	mux.HandleFunc("POST /v1/experiments/{name}/pause", s.mutating(s.pause(true)))
	mux.HandleFunc("POST /v1/experiments/{name}/resume", s.mutating(s.pause(false)))
	mux.HandleFunc("GET /v1/halt", s.haltState)
	mux.HandleFunc("POST /v1/halt", s.mutating(s.halt))
	mux.HandleFunc("POST /v1/resume", s.mutating(s.resume))
	mux.HandleFunc("POST /v1/recover", s.mutating(s.recoverNow))
	mux.HandleFunc("POST /v1/prune", s.mutating(s.prune))
}

// experiments is GET /v1/experiments: a JSON array, sorted by name.
func (s *server) experiments(w http.ResponseWriter, _ *http.Request) {
	exps := s.opt.Control.Experiments()
	if exps == nil {
		exps = []Experiment{}
	}
	writeJSON(w, http.StatusOK, exps)
}

// fire is POST /v1/experiments/{name}/fire: 201 with the run's record once the fault is in
// place; 409 if the agent refused; 404 for an unknown experiment.
func (s *server) fire(w http.ResponseWriter, r *http.Request) {
	if !readBody(w, r, nil) {
		return
	}
	name := r.PathValue("name")
	// The run outlives the request: a client that hangs up must not abort it half-way.
	id, err := s.opt.Control.Fire(context.WithoutCancel(r.Context()), name)
	var refused *Refused
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
		return
	case errors.As(err, &refused):
		writeJSON(w, http.StatusConflict, errorBody{Error: refused.Error(), Reason: refused.Reason})
		return
	case err != nil:
		// The request was fine; the fault failed to plan or inject (and was reversed).
		writeJSON(w, http.StatusInternalServerError, errorBody{Error: err.Error(), ID: id})
		return
	}
	s.writeRun(w, http.StatusCreated, id)
}

// writeRun answers with a run's record, or just its id if there is no journal to read.
func (s *server) writeRun(w http.ResponseWriter, code int, id uint64) {
	if s.opt.Journal != nil {
		if rec, err := s.opt.Journal.Get(id); err == nil {
			writeJSON(w, code, rec)
			return
		}
	}
	writeJSON(w, code, journal.Record{ID: id})
}

func (s *server) pause(paused bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !readBody(w, r, nil) {
			return
		}
		name := r.PathValue("name")
		if err := s.opt.Control.SetPaused(name, paused); err != nil {
			if errors.Is(err, ErrNotFound) {
				writeError(w, http.StatusNotFound, err.Error())
				return
			}
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		for _, e := range s.opt.Control.Experiments() {
			if e.Name == name {
				writeJSON(w, http.StatusOK, e)
				return
			}
		}
		writeJSON(w, http.StatusOK, Experiment{Name: name, Paused: paused})
	}
}

func (s *server) haltState(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, HaltResponse{Halted: s.opt.Control.Halted()})
}

// halt is POST /v1/halt {"reason": "..."}: the persisted kill switch. It answers once the
// faults it ended are reverted (or after haltWait).
func (s *server) halt(w http.ResponseWriter, r *http.Request) {
	var req HaltRequest
	if !readBody(w, r, &req) {
		return
	}
	if len(req.Reason) > maxReason { // encoding/json has already made it valid UTF-8
		writeError(w, http.StatusBadRequest, fmt.Sprintf("reason: at most %d bytes", maxReason))
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), haltWait)
	defer cancel()
	n, err := s.opt.Control.Halt(ctx, req.Reason)
	if err != nil {
		// In memory the agent is halted even if the switch could not be persisted.
		writeJSON(w, http.StatusInternalServerError, errorBody{Error: err.Error()})
		return
	}
	s.opt.Log.Warn("halted through the API", "reason", req.Reason, "ended", n)
	writeJSON(w, http.StatusOK, HaltResponse{Halted: true, Ended: n})
}

func (s *server) resume(w http.ResponseWriter, r *http.Request) {
	if !readBody(w, r, nil) {
		return
	}
	if err := s.opt.Control.Resume(); err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.opt.Log.Info("resumed through the API")
	writeJSON(w, http.StatusOK, HaltResponse{Halted: false})
}

// readBody decodes the (bounded) JSON body into v, strictly: unknown fields and trailing data
// are errors. An empty body is the zero value. With v nil only an empty body or an empty
// object is accepted. On failure it has answered 400 or 413 and returns false.
func readBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if v == nil {
		v = &struct{}{}
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		// Exactly one value: anything after it is a malformed request.
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("unexpected data after the JSON object")
			if mbe := new(http.MaxBytesError); errors.As(terr, &mbe) {
				err = terr
			}
		}
	}
	if err == nil || err == io.EOF {
		return true
	}
	if mbe := new(http.MaxBytesError); errors.As(err, &mbe) {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", mbe.Limit))
		return false
	}
	writeError(w, http.StatusBadRequest, "malformed request body: "+err.Error())
	return false
}
