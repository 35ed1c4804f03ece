package runner

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/journal"
	"github.com/chaoscron/chaoscron/pkg/config"
	"github.com/chaoscron/chaoscron/pkg/fault"
)

// noop is a fault that changes nothing, for benchmarks of the runner's own costs: checks,
// journal writes, bookkeeping.
type noop struct{}

func (noop) Plan(_ context.Context, run string) (fault.Undo, error) {
	return fault.Undo(fmt.Sprintf(`{"run":%q}`, run)), nil
}
func (noop) Inject(_ context.Context, plan fault.Undo) (fault.Undo, error) { return plan, nil }
func (noop) Revert(context.Context, fault.Undo) error                      { return nil }

func init() {
	fault.Register("bench-noop", func(fault.Params, fault.Env) (fault.Fault, error) { return noop{}, nil })
}

// benchRunner opens a journal at path (fsync on, as in the agent) and a runner over it with
// the config yaml.
func benchRunner(b *testing.B, yaml, path, instance string) (*Runner, *journal.Journal) {
	b.Helper()
	cfg, err := config.Parse([]byte(yaml), "bench.yaml", map[string]any{"journal.path": path})
	if err != nil {
		b.Fatalf("config: %v", err)
	}
	j, err := journal.Open(path, journal.Options{})
	if err != nil {
		b.Fatal(err)
	}
	r, err := New(Options{Config: cfg, Journal: j, Env: fault.Env{Self: os.Getpid()},
		Agent: journal.Agent{Instance: instance, PID: os.Getpid()}})
	if err != nil {
		_ = j.Close()
		b.Fatal(err)
	}
	return r, j
}

func shutdown(b *testing.B, r *Runner, j *journal.Journal) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Shutdown(ctx); err != nil {
		b.Error(err)
	}
	if err := j.Close(); err != nil {
		b.Error(err)
	}
}

// experiments is the YAML list of n experiments named prefix-i, each with the given
// schedule, duration and fault flow mapping.
func experiments(n int, prefix, schedule, duration, faultYAML string) string {
	var sb strings.Builder
	sb.WriteString("experiments:\n")
	for i := range n {
		fmt.Fprintf(&sb, "  - {name: %s-%03d, schedule: %q, duration: %s, fault: %s}\n", prefix, i, schedule, duration, faultYAML)
	}
	return sb.String()
}

// percentile is the p-th percentile (0..100) of sorted d.
func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, len(d)*p/100)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median(d []time.Duration) time.Duration { return percentile(sorted(d), 50) }

func sorted(d []time.Duration) []time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s
}
