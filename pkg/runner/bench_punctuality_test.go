package runner

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/journal"
	"github.com/chaoscron/chaoscron/pkg/schedule"
)

// punctualityEnv sets how long BenchmarkPunctuality watches each side fire: 10s by default,
// so `task bench` ends. The goal is stated for 60s:
//
//	CHAOSCRON_BENCH_PUNCTUALITY=60s go test -run '^$' -bench Punctuality -benchtime 1x ./pkg/runner
const punctualityEnv = "CHAOSCRON_BENCH_PUNCTUALITY"

// BenchmarkPunctuality runs 200 experiments `@every 1s` through the whole agent path (the
// scheduler, Fire with its checks, a fsynced intent, a fault that changes nothing, the run
// journaled active, held for 10ms, reverted and recorded; skipped fires journaled too, so
// that every fire is in the journal) and reports how late each fire started after its tick:
// started_at − scheduled_at, read back from the journal. A fire starts when the scheduler's
// loop takes its time and runs its checks (Runner.decide). applied-p99-ms is the same up to
// the fault in place, which waits for the journal's fsyncs: 200 fires in the same
// millisecond share bbolt's one writer.
//
// In the same iteration, before it, the bare schedule.Scheduler runs the same 200 entries,
// inline as the runner's are, with jobs that only note the time: the baseline (sched-*), so
// that both see the same machine. Each iteration takes two windows; run it with -benchtime 1x.
func BenchmarkPunctuality(b *testing.B) {
	const n = 200
	window := 10 * time.Second
	if s := os.Getenv(punctualityEnv); s != "" {
		v, err := time.ParseDuration(s)
		if err != nil || v < 2*time.Second {
			b.Fatalf("%s=%q: want a duration of at least 2s", punctualityEnv, s)
		}
		window = v
	}
	yaml := `agent: {listen: "off", max_active: 1000}
journal: {record_skips: true}
` + experiments(n, "tick", "@every 1s", "10ms", "{type: bench-noop}")

	var base, late, applied []time.Duration
	var skipped int
	for range b.N {
		base = append(base, schedulerAlone(b, n, window)...)

		path := filepath.Join(b.TempDir(), "journal.db")
		r, j := benchRunner(b, yaml, path, "bench")
		ctx, cancel := context.WithCancel(context.Background())
		r.Start(ctx)
		time.Sleep(window)
		cancel()
		shutdown(b, r, j)

		j, err := journal.Open(path, journal.Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		err = j.Each(func(rec journal.Record) error {
			late = append(late, rec.StartedAt.Sub(rec.ScheduledAt))
			if rec.Status == journal.Skipped {
				skipped++
			} else if !rec.AppliedAt.IsZero() {
				applied = append(applied, rec.AppliedAt.Sub(rec.ScheduledAt))
			}
			return nil
		})
		_ = j.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
	if len(late) == 0 || len(base) == 0 {
		b.Fatal("nothing fired")
	}
	late, base, applied = sorted(late), sorted(base), sorted(applied)
	b.ReportMetric(float64(len(late))/float64(b.N), "fires/op")
	b.ReportMetric(float64(skipped)/float64(b.N), "skipped/op")
	b.ReportMetric(ms(percentile(late, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(late, 99)), "p99-ms")
	b.ReportMetric(ms(late[len(late)-1]), "max-ms")
	b.ReportMetric(ms(percentile(applied, 99)), "applied-p99-ms")
	b.ReportMetric(ms(percentile(base, 50)), "sched-p50-ms")
	b.ReportMetric(ms(percentile(base, 99)), "sched-p99-ms")
	b.ReportMetric(ms(percentile(late, 99))/ms(percentile(base, 99)), "ratio")
}

// schedulerAlone runs n no-op entries `@every 1s` on a bare Scheduler for window and returns
// each call's lateness. The entries are inline, as the runner's are.
func schedulerAlone(b *testing.B, n int, window time.Duration) []time.Duration {
	every, err := schedule.Parse("@every 1s", time.UTC)
	if err != nil {
		b.Fatal(err)
	}
	late := make(chan time.Duration, n*int(window/time.Second+2))
	s := schedule.NewScheduler(time.UTC, nil)
	for i := range n {
		s.Add(schedule.Entry{Name: "e" + string(rune('a'+i%26)) + string(rune('a'+i/26)), Schedule: every, Inline: true},
			func(_ context.Context, _ string, at time.Time) {
				select {
				case late <- time.Since(at):
				default:
				}
			})
	}
	s.Start(context.Background())
	time.Sleep(window)
	s.Stop()
	close(late)
	var out []time.Duration
	for d := range late {
		out = append(out, d)
	}
	return out
}
