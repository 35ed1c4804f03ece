package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/chaoscron/chaoscron/journal"
)

// Client talks to a running agent over its unix socket. Its journal methods match
// *journal.Journal's, so a command reads a live journal through the agent exactly as it
// reads an idle one from the file.
type Client struct {
	socket string
	hc     *http.Client
}

var _ Journal = (*Client)(nil)

// NewClient returns a client for the agent listening on the unix socket at path.
func NewClient(path string) *Client {
	d := net.Dialer{Timeout: 2 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		},
		ResponseHeaderTimeout: 30 * time.Second,
		DisableCompression:    true,
	}
	return &Client{socket: path, hc: &http.Client{Transport: tr}}
}

// Close releases idle connections.
func (c *Client) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}

// StatusError is a non-2xx answer from the agent.
type StatusError struct {
	Code   int
	Msg    string
	Reason string // for a refused fire
}

func (e *StatusError) Error() string { return e.Msg }

// Is lets a 404 match journal.ErrNotFound.
func (e *StatusError) Is(target error) bool {
	return e.Code == http.StatusNotFound && target == journal.ErrNotFound
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	u := "http://chaoscron" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("agent socket %s: %w", c.socket, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		var eb errorBody
		b, _ := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
		if json.Unmarshal(b, &eb) != nil || eb.Error == "" {
			eb.Error = fmt.Sprintf("agent answered %s", resp.Status)
		}
		return nil, &StatusError{Code: resp.StatusCode, Msg: eb.Error, Reason: eb.Reason}
	}
	return resp, nil
}

func (c *Client) getJSON(ctx context.Context, method, path string, q url.Values, body, out any) error {
	resp, err := c.do(ctx, method, path, q, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("agent socket %s: %s %s: %w", c.socket, method, path, err)
	}
	return nil
}

// Probe asks the agent for one of its health routes (/healthz, /readyz): nil if it answers
// 2xx, else the agent's reason (a *StatusError) or why it could not be reached.
func (c *Client) Probe(ctx context.Context, path string) error {
	resp, err := c.do(ctx, http.MethodGet, path, nil, nil)
	if se := (*StatusError)(nil); errors.As(err, &se) && se.Reason != "" {
		se.Msg += ": " + se.Reason // /readyz says why in "reason"
	}
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxBody))
	return resp.Body.Close()
}

// FilterQuery encodes f as the query of GET /v1/runs.
func FilterQuery(f journal.Filter) url.Values {
	q := url.Values{}
	if f.Experiment != "" {
		q.Set("experiment", f.Experiment)
	}
	if f.Status != "" {
		q.Set("status", string(f.Status))
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.Format(time.RFC3339Nano))
	}
	if f.Limit != 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.Before != 0 {
		q.Set("before", strconv.FormatUint(f.Before, 10))
	}
	return q
}

// List is GET /v1/runs, page after page (MaxLimit runs each), until it has f.Limit runs
// (0: all that match): the agent answers one bounded page per request, and the runs pile
// up here, in the client, instead.
func (c *Client) List(f journal.Filter) ([]journal.Record, error) {
	want := f.Limit
	recs := []journal.Record{}
	var bad *journal.DamagedError // the damaged runs of every page
	for {
		f.Limit = MaxLimit
		if want > 0 {
			f.Limit = min(want-len(recs), MaxLimit)
		}
		var page []journal.Record
		next, err := c.page(f, &page)
		var de *journal.DamagedError
		if errors.As(err, &de) {
			if bad == nil {
				bad = de
			} else {
				bad.Runs, bad.Errs = append(bad.Runs, de.Runs...), append(bad.Errs, de.Errs...)
			}
		} else if err != nil {
			return nil, err
		}
		recs = append(recs, page...)
		if next == 0 || (want > 0 && len(recs) >= want) {
			if bad != nil {
				return recs, bad
			}
			return recs, nil
		}
		f.Before = next
	}
}

// page is one GET /v1/runs; next is the before cursor of its Link rel="next" header, 0
// when there is no next page.
func (c *Client) page(f journal.Filter, out *[]journal.Record) (next uint64, err error) {
	resp, err := c.do(context.Background(), http.MethodGet, "/v1/runs", FilterQuery(f), nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return 0, fmt.Errorf("agent socket %s: GET /v1/runs: %w", c.socket, err)
	}
	// Damaged runs the agent skipped come with the page, as journal.List returns them.
	defer func() {
		if err == nil {
			err = parseDamaged(resp.Header.Get(DamagedHeader))
		}
	}()
	link := resp.Header.Get("Link")
	if link == "" {
		return 0, nil
	}
	u, rel, _ := strings.Cut(link, ";")
	u = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(u), "<"), ">")
	pu, perr := url.Parse(u)
	if perr != nil || strings.TrimSpace(rel) != `rel="next"` {
		return 0, fmt.Errorf("agent socket %s: GET /v1/runs: Link header %q: expected <url>; rel=\"next\"", c.socket, link)
	}
	next, perr = strconv.ParseUint(pu.Query().Get("before"), 10, 64)
	if perr != nil || next == 0 || (f.Before != 0 && next >= f.Before) {
		// A cursor that does not move back would page for ever.
		return 0, fmt.Errorf("agent socket %s: GET /v1/runs: Link header %q has no usable before=", c.socket, link)
	}
	return next, nil
}

// Get is GET /v1/runs/{id}; an unknown id is an error matching journal.ErrNotFound.
func (c *Client) Get(id uint64) (journal.Record, error) {
	var rec journal.Record
	err := c.getJSON(context.Background(), http.MethodGet, "/v1/runs/"+strconv.FormatUint(id, 10), nil, nil, &rec)
	return rec, err // a 404 is a *StatusError that matches journal.ErrNotFound
}

// Stats is GET /v1/stats.
func (c *Client) Stats() (journal.Stats, error) {
	var st journal.Stats
	resp, err := c.do(context.Background(), http.MethodGet, "/v1/stats", nil, nil)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("agent socket %s: GET /v1/stats: %w", c.socket, err)
	}
	return st, parseDamaged(resp.Header.Get(DamagedHeader))
}

// Each is GET /v1/export, calling fn for every record, oldest first.
func (c *Client) Each(fn func(journal.Record) error) error {
	return c.Export(context.Background(), func(line []byte) error {
		var rec journal.Record
		if err := json.Unmarshal(line, &rec); err != nil {
			return fmt.Errorf("agent socket %s: export: %w", c.socket, err)
		}
		return fn(rec)
	})
}

// Export is GET /v1/export, calling fn with each JSON line (without its newline) as the
// agent wrote it.
func (c *Client) Export(ctx context.Context, fn func(line []byte) error) error {
	resp, err := c.do(ctx, http.MethodGet, "/v1/export", nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	for sc.Scan() {
		if err := fn(sc.Bytes()); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("agent socket %s: export: %w", c.socket, err)
	}
	return parseDamaged(resp.Trailer.Get(DamagedHeader)) // read once the body is
}

// Experiments is GET /v1/experiments.
func (c *Client) Experiments(ctx context.Context) ([]Experiment, error) {
	var exps []Experiment
	err := c.getJSON(ctx, http.MethodGet, "/v1/experiments", nil, nil, &exps)
	return exps, err
}

// SetPaused is POST /v1/experiments/{name}/pause or …/resume; an unknown experiment is a
// *StatusError with code 404.
func (c *Client) SetPaused(ctx context.Context, name string, paused bool) (Experiment, error) {
	verb := "resume"
	if paused {
		verb = "pause"
	}
	var e Experiment
	err := c.getJSON(ctx, http.MethodPost, "/v1/experiments/"+url.PathEscape(name)+"/"+verb, nil, nil, &e)
	return e, err
}

// Halt is POST /v1/halt.
func (c *Client) Halt(ctx context.Context, reason string) (HaltResponse, error) {
	var hr HaltResponse
	err := c.getJSON(ctx, http.MethodPost, "/v1/halt", nil, HaltRequest{Reason: reason}, &hr)
	return hr, err
}

// Resume is POST /v1/resume.
func (c *Client) Resume(ctx context.Context) (HaltResponse, error) {
	var hr HaltResponse
	err := c.getJSON(ctx, http.MethodPost, "/v1/resume", nil, struct{}{}, &hr)
	return hr, err
}

// Fire is POST /v1/experiments/{name}/fire: the agent runs the experiment now and answers
// with the run's record once the fault is in place.
func (c *Client) Fire(ctx context.Context, name string) (journal.Record, error) {
	var rec journal.Record
	err := c.getJSON(ctx, http.MethodPost, "/v1/experiments/"+url.PathEscape(name)+"/fire", nil, struct{}{}, &rec)
	return rec, err
}

// Recover is POST /v1/recover: the agent retries its failed cleanups now, and sweeps.
func (c *Client) Recover(ctx context.Context) (RecoverResponse, error) {
	var rr RecoverResponse
	err := c.getJSON(ctx, http.MethodPost, "/v1/recover", nil, struct{}{}, &rr)
	return rr, err
}

// Prune is POST /v1/prune.
func (c *Client) Prune(ctx context.Context, req PruneRequest) (PruneResponse, error) {
	var pr PruneResponse
	err := c.getJSON(ctx, http.MethodPost, "/v1/prune", nil, req, &pr)
	return pr, err
}
