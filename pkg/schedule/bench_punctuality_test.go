package schedule

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
)

// punctualityEnv sets how long BenchmarkPunctuality watches the scheduler fire: 10s by
// default, so `task bench` ends; the figure in docs/performance.md's table is also quoted with 60s:
//
//	CHAOSCRON_BENCH_PUNCTUALITY=60s go test -run '^$' -bench Punctuality -benchtime 1x ./pkg/schedule
const punctualityEnv = "CHAOSCRON_BENCH_PUNCTUALITY"

func punctualityWindow(b *testing.B) time.Duration {
	d := 10 * time.Second
	if s := os.Getenv(punctualityEnv); s != "" {
		v, err := time.ParseDuration(s)
		if err != nil || v < 2*time.Second {
			b.Fatalf("%s=%q: want a duration of at least 2s", punctualityEnv, s)
		}
		d = v
	}
	return d
}

// BenchmarkPunctuality schedules 200 entries `@every 1s` with jobs that do nothing but
// note the time, and reports how late each call came after the tick it fired for: the
// scheduler's own share of firing lateness, the baseline for the runner's
// (runner.BenchmarkPunctuality). robfig-cron is the same with robfig's own run loop
// (cron.Cron), which Scheduler replaces, in the same iteration; inline is Scheduler calling
// the jobs itself (Entry.Inline). Each iteration watches for the whole
// window; run it with -benchtime 1x.
func BenchmarkPunctuality(b *testing.B) {
	const entries = 200
	window := punctualityWindow(b)
	// scheduler: each call in a goroutine of its own, as robfig's loop does; inline: called
	// by the loop in turn (Entry.Inline), as the runner's scheduled fires are.
	for _, inline := range []bool{false, true} {
		b.Run(map[bool]string{false: "scheduler", true: "inline"}[inline], func(b *testing.B) {
			every, err := Parse("@every 1s", time.UTC)
			if err != nil {
				b.Fatal(err)
			}
			var all []time.Duration
			for range b.N {
				var l lateness
				s := NewScheduler(time.UTC, nil)
				for i := range entries {
					s.Add(Entry{Name: fmt.Sprintf("e%03d", i), Schedule: every, Inline: inline}, func(_ context.Context, _ string, at time.Time) {
						l.add(time.Since(at))
					})
				}
				s.Start(context.Background())
				time.Sleep(window)
				s.Stop()
				all = append(all, l.d...)
			}
			reportLateness(b, all)
		})
	}
	b.Run("robfig-cron", func(b *testing.B) {
		var all []time.Duration
		for range b.N {
			var l lateness
			c := cron.New()
			for range entries {
				// cron.Every rounds to whole seconds, so the tick is the second the call is in.
				c.Schedule(cron.Every(time.Second), cron.FuncJob(func() {
					now := time.Now()
					l.add(now.Sub(now.Truncate(time.Second)))
				}))
			}
			c.Start()
			time.Sleep(window)
			<-c.Stop().Done()
			all = append(all, l.d...)
		}
		reportLateness(b, all)
	})
}

type lateness struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *lateness) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// reportLateness reports the median, 99th percentile and worst lateness in microseconds,
// and how many calls they were taken from.
func reportLateness(b *testing.B, d []time.Duration) {
	if len(d) == 0 {
		b.Fatal("nothing fired")
	}
	slices.Sort(d)
	b.ReportMetric(float64(len(d))/float64(b.N), "fires/op")
	b.ReportMetric(float64(d[len(d)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(d[len(d)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(d[len(d)-1].Microseconds()), "max-µs")
	b.ReportMetric(float64(d[0].Microseconds()), "min-µs")
}
