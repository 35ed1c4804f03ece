package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/journal"
	"github.com/chaoscron/chaoscron/pkg/api"
)

// closedRuns commits n finished runs to a's journal.
func closedRuns(t *testing.T, a *agent, n int) {
	t.Helper()
	for i := range n {
		r := journal.Record{Experiment: "other", Fault: "disk", Trigger: "schedule", Status: journal.Succeeded,
			Cleanup: journal.CleanupDone, StartedAt: time.Now()}
		if i%2 == 0 {
			r.Experiment = "fill"
		}
		if err := a.j.Begin(&r); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRunsPaged: GET /v1/runs answers one bounded page (DefaultLimit without a limit, at
// most MaxLimit), and its Link header leads through every run exactly once, newest first,
// with the filters kept.
func TestRunsPaged(t *testing.T) {
	a := newAgent(t, "1h")
	const n = api.MaxLimit + 50
	closedRuns(t, a, n)
	auth := []string{"Authorization", "Bearer " + token}
	get := func(path string) ([]journal.Record, string) {
		t.Helper()
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set(auth[0], auth[1])
		w := httptest.NewRecorder()
		a.network.ServeHTTP(w, req)
		var recs []journal.Record
		if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &recs) != nil {
			t.Fatalf("GET %s: %d %.200s", path, w.Code, w.Body)
		}
		link := w.Header().Get("Link")
		if link == "" {
			return recs, ""
		}
		u, rel, _ := strings.Cut(link, ";")
		if strings.TrimSpace(rel) != `rel="next"` {
			t.Fatalf("GET %s: Link %q", path, link)
		}
		return recs, strings.Trim(strings.TrimSpace(u), "<>")
	}
	cases := []struct {
		name, path string
		pages      []int // sizes
		exp        string
	}{
		{"no limit: default pages", "/v1/runs", nil, ""},
		{"limit above the maximum", "/v1/runs?limit=5000", []int{api.MaxLimit, n - api.MaxLimit}, ""},
		{"small pages with a filter", "/v1/runs?experiment=fill&limit=200", []int{200, 200, 125}, "fill"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var ids []uint64
			var sizes []int
			for next := c.path; next != ""; {
				recs, link := get(next)
				sizes = append(sizes, len(recs))
				for _, r := range recs {
					if c.exp != "" && r.Experiment != c.exp {
						t.Fatalf("%s: run %d of %s", next, r.ID, r.Experiment)
					}
					ids = append(ids, r.ID)
				}
				next = link
			}
			want := c.pages
			if want == nil {
				want = make([]int, n/api.DefaultLimit)
				for i := range want {
					want[i] = api.DefaultLimit
				}
				want = append(want, n%api.DefaultLimit)
			}
			if !slices.Equal(sizes, want) {
				t.Errorf("page sizes %v, want %v", sizes, want)
			}
			if !slices.IsSortedFunc(ids, func(x, y uint64) int { return int(y) - int(x) }) || len(slices.Compact(slices.Clone(ids))) != len(ids) {
				t.Errorf("ids not strictly newest first across pages")
			}
		})
	}
	if code, _ := do(a.network, "GET", "/v1/runs?before=x", "", auth...); code != http.StatusBadRequest {
		t.Errorf("before=x: %d, want 400", code)
	}
}

// TestClientListPages: over the real socket the client follows the pages, so journal list
// through a running agent still prints every run (or exactly --limit of them).
func TestClientListPages(t *testing.T) {
	a := newAgent(t, "1h")
	closedRuns(t, a, api.MaxLimit+50)
	path := api.SocketPath(filepath.Join(t.TempDir(), "j.db"))
	ln, err := api.ListenSocket(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: a.local}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	cl := api.NewClient(path)
	defer cl.Close()
	for _, c := range []struct {
		f    journal.Filter
		want int
	}{
		{journal.Filter{}, api.MaxLimit + 50},
		{journal.Filter{Limit: api.MaxLimit + 20}, api.MaxLimit + 20},
		{journal.Filter{Limit: 7}, 7},
		{journal.Filter{Experiment: "other"}, (api.MaxLimit + 50) / 2},
	} {
		recs, err := cl.List(c.f)
		if err != nil || len(recs) != c.want {
			t.Errorf("List(%+v): %d runs, %v; want %d", c.f, len(recs), err, c.want)
			continue
		}
		if recs[0].ID < recs[len(recs)-1].ID {
			t.Errorf("List(%+v): not newest first", c.f)
		}
	}
}
