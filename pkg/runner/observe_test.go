package runner

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

// observer stands in for the http fault (registered under its name, which the real one
// would take in a binary that imports it): at inject it reports what its proxy would.
type observer struct{ observe func(string) }

func (o *observer) Plan(context.Context, string) (fault.Undo, error) { return fault.Undo(`{}`), nil }
func (o *observer) Inject(_ context.Context, plan fault.Undo) (fault.Undo, error) {
	for _, ev := range []string{"seen", "seen", "aborted", "seen", "delayed", "bogus"} {
		o.observe(ev)
	}
	return plan, nil
}
func (o *observer) Revert(context.Context, fault.Undo) error { return nil }

func init() {
	fault.Register("http", func(_ fault.Params, env fault.Env) (fault.Fault, error) {
		return &observer{observe: env.Observe}, nil
	})
}

// TestObserveMetrics: an http experiment's events count in chaos_http_requests_total under
// its own name, with every outcome there (at zero) from the start; other experiments have no
// series.
func TestObserveMetrics(t *testing.T) {
	f := newFixture(t, `
experiments:
  - {name: web, schedule: "@every 1h", duration: 1s, fault: {type: http}}
  - {name: api, schedule: "@every 1h", duration: 1s, fault: {type: http}}
  - {name: burn, schedule: "@every 1h", duration: 1s, fault: {type: cpu, load: 1}}
`)
	c := f.m.HTTPRequests
	if n := testutil.CollectAndCount(c); n != 6 {
		t.Fatalf("%d series before any run, want 3 outcomes × 2 http experiments", n)
	}
	if _, err := f.r.Fire(t.Context(), "web", TriggerFire, time.Time{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		exp, outcome string
		want         float64
	}{{"web", "seen", 3}, {"web", "aborted", 1}, {"web", "delayed", 1}, {"api", "seen", 0}} {
		if got := testutil.ToFloat64(c.WithLabelValues(tc.exp, tc.outcome)); got != tc.want {
			t.Errorf("%s %s = %v, want %v", tc.exp, tc.outcome, got, tc.want)
		}
	}
	if n := testutil.CollectAndCount(c); n != 6 {
		t.Errorf("%d series, want 6 (no series for burn, none for an unknown event)", n)
	}
}
