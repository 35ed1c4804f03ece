// Package api serves chaoscron over HTTP.
//
// Two handlers come out of the same routes:
//
//   - the network listener (agent.listen): /metrics, /healthz and /readyz, read-only and safe
//     to expose to the cluster network. The /v1 API is served there only when a token is
//     configured, and then every /v1 call, reads included, needs "Authorization: Bearer
//     <token>": a run record holds host names, pids, paths and whole target command lines,
//     which may carry secrets. Without a token the /v1 routes do not exist on the network (404).
//   - the unix socket next to the journal (Local): the whole /v1 API, mutating calls
//     included, without a token. The socket is mode 0600, owned by the agent's user: the
//     file system is the authentication, as for the journal file itself, which grants as
//     much (a process that can open the journal can halt chaos by writing it).
//
// The package reads and drives the agent through the small interfaces it declares
// (Journal, Control), never through the runner itself.
package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/chaoscron/chaoscron/journal"
)

// MaxBody is the largest request body accepted; anything longer is refused with 413 before
// it is read in full.
const MaxBody = 64 << 10

// haltWait bounds how long POST /v1/halt waits for the faults it ended to be reverted
// before it answers. The reverts go on after it answers regardless.
const haltWait = 15 * time.Second

// Journal is what the journal routes read. *journal.Journal implements it.
type Journal interface {
	List(journal.Filter) ([]journal.Record, error)
	Get(id uint64) (journal.Record, error)
	Stats() (journal.Stats, error)
	// Each calls fn for every run, oldest first.
	Each(fn func(journal.Record) error) error
}

var _ Journal = (*journal.Journal)(nil)

// Experiment is one configured experiment as GET /v1/experiments shows it.
type Experiment struct {
	Name     string    `json:"name"`
	Fault    string    `json:"fault"`
	Schedule string    `json:"schedule"`
	Window   string    `json:"window,omitempty"`
	Paused   bool      `json:"paused"`
	Active   int       `json:"active"`
	NextFire time.Time `json:"next_fire,omitzero"`
}

// Control is what the control routes drive. An unknown experiment is an error matching
// ErrNotFound; a fire that the agent's state refuses (halted, blackout, concurrency,
// max_active) is a *Refused.
type Control interface {
	Experiments() []Experiment
	// Fire starts one run of the named experiment now and returns its journal id once the
	// fault is in place.
	Fire(ctx context.Context, name string) (uint64, error)
	SetPaused(name string, paused bool) error
	// Halt turns the persisted halt switch on, ends every active run, and waits (within
	// ctx) until they are reverted. It returns how many runs it ended.
	Halt(ctx context.Context, reason string) (int, error)
	// Resume turns the halt switch off.
	Resume() error
	Halted() bool
	// Recover reverts now every open run that no live run owns (cleanups that failed) and
	// sweeps for leftovers no run owns. A revert that fails again is counted in the
	// response and is the error; the run stays open for the next try.
	Recover(ctx context.Context) (RecoverResponse, error)
	// Prune deletes closed runs beyond the newest maxRuns or older than maxAge; nil is
	// the agent's configured limit (journal.max_runs, journal.max_age).
	Prune(ctx context.Context, maxRuns *int, maxAge *time.Duration) (PruneResponse, error)
}

// Options wires the handler.
type Options struct {
	Metrics http.Handler
	// Ready reports why the agent is not ready yet (nil = ready): journal open, recovery
	// finished, config loaded. Mutating calls are refused (503) until it is nil: nothing
	// may fire before start-up recovery has finished.
	Ready func() error
	// Journal and Control, when set, enable the /v1 routes that need them.
	Journal Journal
	Control Control
	// Local marks the handler for the unix socket: /v1 is served, mutating calls need no
	// token. Otherwise /v1 is served only when Token is set, and every /v1 call needs it.
	Local bool
	Token string
	Log   *slog.Logger
}

// Handler returns the HTTP routes: /metrics, /healthz, /readyz and, as Options allow, /v1.
func Handler(opt Options) http.Handler {
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	s := &server{opt: opt}
	if opt.Token != "" {
		sum := sha256.Sum256([]byte(opt.Token))
		s.token = sum[:]
	}
	mux := http.NewServeMux()
	if opt.Metrics != nil {
		mux.Handle("GET /metrics", opt.Metrics)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if opt.Ready != nil {
			if err := opt.Ready(); err != nil {
				writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	if opt.Local || opt.Token != "" {
		if opt.Journal != nil {
			s.journalRoutes(mux)
		}
		if opt.Control != nil {
			s.controlRoutes(mux)
		}
	}
	return s.recoverer(s.guard(jsonErrors(mux)))
}

// guard refuses every /v1 request on the network that lacks the token, before any route
// sees it: reads too, and unknown /v1 paths, so that nothing about the API is learnt
// without it.
func (s *server) guard(h http.Handler) http.Handler {
	if s.opt.Local {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.URL.Path == "/v1" || strings.HasPrefix(r.URL.Path, "/v1/")) && s.token != nil && !s.authorized(r) {
			unauthorized(w)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="chaoscron"`)
	writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
}

type server struct {
	opt   Options
	token []byte // sha256 of the token; nil: none configured
}

// jsonErrors answers the mux's own 404 and 405 in JSON, like every other error, keeping the
// status and the Allow header the mux sets (GET routes also allow HEAD, which they serve).
// No catch-all "/" route does it: a pattern without a method would match every method and
// turn each 405 into a 404.
func jsonErrors(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			// A route, or the mux's redirect to a clean path: served by the mux itself,
			// which also sets the path values that mux.Handler leaves out.
			mux.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(&muxError{ResponseWriter: w, r: r}, r)
	})
}

// muxError replaces the plain-text body of the mux's 404 or 405 with a JSON error. Its other
// answer without a route, a redirect to the cleaned path, passes through as it is.
type muxError struct {
	http.ResponseWriter
	r        *http.Request
	replaced bool
}

func (e *muxError) WriteHeader(code int) {
	switch code {
	case http.StatusNotFound:
		writeError(e.ResponseWriter, code, "no such endpoint: "+e.r.URL.Path)
	case http.StatusMethodNotAllowed:
		allow := e.Header().Get("Allow")
		writeError(e.ResponseWriter, code, "method "+e.r.Method+" not allowed (allowed: "+allow+")")
	default:
		e.ResponseWriter.WriteHeader(code)
		return
	}
	e.replaced = true
}

func (e *muxError) Write(b []byte) (int, error) {
	if e.replaced {
		return len(b), nil
	}
	return e.ResponseWriter.Write(b)
}

// authorized reports whether r may mutate: always on the socket; on the network only with
// the configured bearer token. Both sides are hashed first so the comparison takes the same
// time whatever the length of the guess.
func (s *server) authorized(r *http.Request) bool {
	if s.opt.Local {
		return true
	}
	if s.token == nil {
		return false
	}
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(sum[:], s.token) == 1
}

// mutating wraps a handler that changes the agent: authorization first (before the body is
// read), then readiness, then a bounded body.
func (s *server) mutating(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			unauthorized(w)
			return
		}
		if s.opt.Ready != nil {
			if err := s.opt.Ready(); err != nil {
				writeError(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
				return
			}
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
		// A halt answers once its reverts are done, up to haltWait; a fire once the fault
		// is in place. The server's write timeout must not cut either answer.
		extendWrite(w, haltWait+writeTimeout)
		h(w, r)
	}
}

// recoverer turns a panic in a handler into a 500 and a log line: one bad request must not
// take the agent, and the faults it holds, down with it.
func (s *server) recoverer(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.opt.Log.Error("api handler panicked", "method", r.Method, "path", r.URL.Path, "panic", v)
				writeError(w, http.StatusInternalServerError, "internal error")
			}
		}()
		h.ServeHTTP(w, r)
	})
}

// errorBody is every error response: {"error": "..."} and, for a refused fire, the reason.
type errorBody struct {
	Error  string `json:"error"`
	Reason string `json:"reason,omitempty"`
	ID     uint64 `json:"id,omitempty"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
