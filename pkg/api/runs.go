package api

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/chaoscron/chaoscron/journal"
)

// statuses are the values ?status= accepts.
var statuses = []journal.Status{journal.Pending, journal.Active, journal.Succeeded, journal.Failed, journal.Aborted, journal.Skipped}

func (s *server) journalRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/runs", s.listRuns)
	mux.HandleFunc("GET /v1/runs/{id}", s.getRun)
	mux.HandleFunc("GET /v1/stats", s.stats)
	mux.HandleFunc("GET /v1/export", s.export)
}

// Page sizes of GET /v1/runs. A page is what one request holds in memory: without them a
// single request for every retained run (10,000, some 5 MB of JSON) took the agent from 22 to
// 125 MB with four at once.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// listRuns is GET /v1/runs?experiment=&status=&since=&limit=&before=: a JSON array of records,
// newest first, exactly as `chaoscron journal list -o json` prints them, one page of at most
// limit (default DefaultLimit, at most MaxLimit). When older runs match, a Link header
// (rel="next") gives the next page's URL: the same query with before=<oldest id shown>.
func (s *server) listRuns(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := ParseFilter(q, time.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	page := f.Limit
	if page == 0 {
		page = DefaultLimit
	}
	page = min(page, MaxLimit)
	f.Limit = page + 1 // one more, to know whether there is a next page
	recs, err := s.opt.Journal.List(f)
	if !served(w, err) {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if len(recs) > page {
		recs = recs[:page]
		q.Set("before", strconv.FormatUint(recs[page-1].ID, 10))
		w.Header().Set("Link", "<"+r.URL.Path+"?"+q.Encode()+`>; rel="next"`)
	}
	writeJSON(w, http.StatusOK, recs)
}

// ParseFilter reads a run filter from query parameters: experiment, status, since (RFC3339,
// or a duration before now such as 1h), limit and before (a run id). Unknown parameters are errors, so a typo
// does not silently list everything.
func ParseFilter(q url.Values, now time.Time) (journal.Filter, error) {
	var f journal.Filter
	for k, v := range q {
		if len(v) != 1 {
			return f, fmt.Errorf("query parameter %q given %d times", k, len(v))
		}
		val := v[0]
		switch k {
		case "experiment":
			f.Experiment = val
		case "status":
			f.Status = journal.Status(val)
			if val != "" && !validStatus(f.Status) {
				return f, fmt.Errorf("status %q: expected one of pending, active, succeeded, failed, aborted, skipped", val)
			}
		case "since":
			if val == "" {
				continue
			}
			t, err := parseSince(val, now)
			if err != nil {
				return f, err
			}
			f.Since = t
		case "limit":
			if val == "" {
				continue
			}
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 {
				return f, fmt.Errorf("limit %q: expected a whole number ≥ 0", val)
			}
			f.Limit = n
		case "before":
			if val == "" {
				continue
			}
			n, err := strconv.ParseUint(val, 10, 64)
			if err != nil {
				return f, fmt.Errorf("before %q: expected a run id", val)
			}
			f.Before = n
		default:
			return f, fmt.Errorf("unknown query parameter %q (known: experiment, status, since, limit, before)", k)
		}
	}
	return f, nil
}

func validStatus(st journal.Status) bool {
	for _, s := range statuses {
		if s == st {
			return true
		}
	}
	return false
}

func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("since %q: expected an RFC3339 time or a duration like 1h", s)
	}
	return t, nil
}

// getRun is GET /v1/runs/{id}: one record.
func (s *server) getRun(w http.ResponseWriter, r *http.Request) {
	raw := r.PathValue("id")
	id, err := strconv.ParseUint(raw, 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("run id %q is not a number", raw))
		return
	}
	rec, err := s.opt.Journal.Get(id)
	switch {
	case errors.Is(err, journal.ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("run %d: %v", id, err))
	case err != nil:
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("run %d: %v", id, err))
	default:
		writeJSON(w, http.StatusOK, rec)
	}
}

// stats is GET /v1/stats: journal.Stats.
func (s *server) stats(w http.ResponseWriter, _ *http.Request) {
	st, err := s.opt.Journal.Stats()
	if !served(w, err) {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// export is GET /v1/export: every record as JSON lines, oldest first, streamed. An error
// after the first line cannot change the status any more; it ends the stream early, which
// the client sees as a truncated body (no final newline or a short count).
func (s *server) export(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Trailer", DamagedHeader)
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	wrote := false
	err := s.opt.Journal.Each(func(rec journal.Record) error {
		// A long export outlives the server's write timeout; a client that stops reading
		// for that long is still cut off. (Moving a deadline is a timer reset: cheap.)
		extendWrite(w, writeTimeout)
		wrote = true
		return enc.Encode(rec)
	})
	if h := damaged(err); h != "" {
		_ = bw.Flush()
		w.Header().Set(DamagedHeader, h) // the trailer: damage is known only at the end
		return
	}
	if err != nil {
		if !wrote {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		s.opt.Log.Error("export ended early", "err", err)
		panic(http.ErrAbortHandler) // tell the client the body is incomplete
	}
	_ = bw.Flush()
}
