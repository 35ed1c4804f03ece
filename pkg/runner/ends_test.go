package runner

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chaoscron/chaoscron/pkg/metrics"
)

// The planned-end gauge follows the earliest end among the runs in place, whichever ends first.
func TestPlannedEndFollowsEarliestRun(t *testing.T) {
	r := &Runner{m: metrics.New("test"), ends: map[string]*ends{}}
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	gauge := func() time.Duration {
		v := testutil.ToFloat64(r.m.PlannedEnd.WithLabelValues("disk"))
		if v == 0 {
			return -1
		}
		return time.Unix(0, int64(v*1e9)).Sub(t0).Round(time.Millisecond)
	}
	runs := map[int]*run{}
	for _, s := range []int{5, 1, 3, 4, 2} {
		runs[s] = &run{ftype: "disk", end: t0.Add(time.Duration(s) * time.Second)}
		r.addEndLocked(runs[s])
	}
	other := &run{ftype: "network", end: t0}
	r.addEndLocked(other)
	never := &run{ftype: "disk"} // its fault never got in place
	r.dropEndLocked(never)

	for _, step := range []struct {
		drop int
		want time.Duration
	}{{0, time.Second}, {1, 2 * time.Second}, {4, 2 * time.Second}, {2, 3 * time.Second}, {5, 3 * time.Second}, {3, -1}} {
		if step.drop != 0 {
			r.dropEndLocked(runs[step.drop])
			r.dropEndLocked(runs[step.drop]) // twice: a no-op
		}
		if got := gauge(); got != step.want {
			t.Fatalf("after dropping the run ending at +%ds: gauge at %v, want %v", step.drop, got, step.want)
		}
	}
	if v := testutil.ToFloat64(r.m.PlannedEnd.WithLabelValues("network")); v != float64(t0.Unix()) {
		t.Fatalf("another fault type's gauge moved: %v", v)
	}
}
