package control_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/journal"
	"github.com/chaoscron/chaoscron/pkg/api"
	"github.com/chaoscron/chaoscron/pkg/config"
	"github.com/chaoscron/chaoscron/pkg/control"
	"github.com/chaoscron/chaoscron/pkg/fault"
	_ "github.com/chaoscron/chaoscron/pkg/fault/disk"
	"github.com/chaoscron/chaoscron/pkg/runner"
)

// newControl is a real runner on a real journal, as the API's Control. (The API's own
// tests drive it through every route; these check what it adds to the runner.)
func newControl(t *testing.T) (control.Runner, *journal.Journal) {
	t.Helper()
	dir, jp := t.TempDir(), filepath.Join(t.TempDir(), "j.db")
	cfg, err := config.Parse([]byte(`
agent: {listen: "off"}
journal: {max_runs: 3, max_age: 1h}
experiments:
  - {name: fill, schedule: "@every 1h", duration: 1h, fault: {type: disk, path: `+dir+`, size: 1MiB, reserve: 1MiB}}
`), "test.yaml", map[string]any{"journal.path": jp})
	if err != nil {
		t.Fatal(err)
	}
	j, err := journal.Open(jp, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := runner.New(runner.Options{Config: cfg, Journal: j, Env: fault.Env{Self: os.Getpid()}, Agent: journal.Agent{Instance: "control-test"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = r.Shutdown(ctx)
		_ = j.Close()
	})
	return control.New(r), j
}

// TestErrors: the runner's errors become the ones the API answers 404 and 409 for.
func TestErrors(t *testing.T) {
	c, _ := newControl(t)
	if _, err := c.Fire(t.Context(), "nope"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("fire of an unknown experiment: %v, want api.ErrNotFound", err)
	}
	if err := c.SetPaused("nope", true); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("pause of an unknown experiment: %v, want api.ErrNotFound", err)
	}
	if _, err := c.Halt(t.Context(), "drill"); err != nil || !c.Halted() {
		t.Fatalf("halt: %v, halted %v", err, c.Halted())
	}
	var refused *api.Refused
	if _, err := c.Fire(t.Context(), "fill"); !errors.As(err, &refused) || refused.Reason != "halted" {
		t.Fatalf("fire while halted: %v, want *api.Refused{halted}", err)
	}
}

// TestPruneLimits: a limit not given is the config's; a given one wins, 0 included.
func TestPruneLimits(t *testing.T) {
	c, j := newControl(t)
	now := time.Now().UTC()
	for range 5 {
		rec := journal.Record{Experiment: "fill", Fault: "disk", StartedAt: now, EndedAt: now,
			Status: journal.Succeeded, Cleanup: journal.CleanupDone}
		if err := j.Begin(&rec); err != nil {
			t.Fatal(err)
		}
	}
	pr, err := c.Prune(t.Context(), nil, nil)
	if err != nil || pr.Pruned != 2 || pr.MaxRuns != 3 || pr.MaxAge != "1h0m0s" {
		t.Fatalf("prune by the config: %+v %v; want 2 pruned by max runs 3, max age 1h", pr, err)
	}
	one, none := 1, time.Duration(0)
	pr, err = c.Prune(t.Context(), &one, &none)
	if err != nil || pr.Pruned != 2 || pr.MaxRuns != 1 || pr.MaxAge != "0s" {
		t.Fatalf("prune by max runs 1, no max age: %+v %v; want 2 pruned", pr, err)
	}
}
