package fleet_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/journal"
	"github.com/chaoscron/chaoscron/pkg/config"
	"github.com/chaoscron/chaoscron/pkg/fleet"
)

// pct returns the p-th percentile of ds in milliseconds.
func pct(ds []time.Duration, p float64) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[int(p*float64(len(s)-1))]) / 1e6
}

// BenchmarkTake: taking a fleet slot on a real API server (one Lease update, or a fresh read
// first when the cache lags), alone and with 5 agents taking at once, each agent with a client
// of its own; each slot is given back, and the release seen, before the next round.
func BenchmarkTake(b *testing.B) {
	for _, racers := range []int{1, 5} {
		b.Run(fmt.Sprintf("agents=%d", racers), func(b *testing.B) {
			e := newEnvB(b)
			var fs []*fleet.Fleet
			for i := range racers {
				fs = append(fs, e.joinB(b, config.Limit(fmt.Sprint(racers)), fmt.Sprintf("p%d", i)))
			}
			var mu sync.Mutex
			var ds []time.Duration
			b.ResetTimer()
			// Rounds 250 ms apart: an agent's take, release and fresh reads stay below its
			// client-side limit (fleet.QPS), which would otherwise be what is measured.
			tick := time.NewTicker(250 * time.Millisecond)
			defer tick.Stop()
			for n := range b.N {
				<-tick.C
				var wg sync.WaitGroup
				for i, f := range fs {
					wg.Add(1)
					go func() {
						defer wg.Done()
						start := time.Now()
						s, err := f.Take(context.Background(), fmt.Sprintf("%d-%d", n, i), "cpu")
						d := time.Since(start)
						if err != nil {
							b.Error(err)
							return
						}
						mu.Lock()
						ds = append(ds, d)
						mu.Unlock()
						f.Release(s)
					}()
				}
				wg.Wait()
				// The releases land (each agent's loop writes them) before the next round.
				for end := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
					rep, err := fleet.Status(context.Background(), e.agent, e.ns, "bench")
					if err == nil && len(rep.Slots) == 0 {
						break
					}
					if time.Now().After(end) {
						b.Fatalf("slots not given back within 10s: %v %v", rep.Slots, err)
					}
				}
			}
			b.StopTimer()
			b.ReportMetric(pct(ds, 0.5), "p50-ms")
			b.ReportMetric(pct(ds, 0.99), "p99-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkHaltPropagation: from `fleet halt` (the state Lease written) to the moment the last
// of 10 members has seen it through its watch.
func BenchmarkHaltPropagation(b *testing.B) {
	e := newEnvB(b)
	const n = 10
	var mu sync.Mutex
	seen := map[int]time.Time{}
	for i := range n {
		e.joinB(b, "1", fmt.Sprintf("p%d", i), func(st fleet.State) {
			if st.Halted {
				mu.Lock()
				seen[i] = time.Now()
				mu.Unlock()
			}
		})
	}
	var ds []time.Duration
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		mu.Lock()
		clear(seen)
		mu.Unlock()
		start := time.Now()
		if err := fleet.SetHalt(ctx, e.agent, e.ns, "bench", true, "bench", "bench"); err != nil {
			b.Fatal(err)
		}
		for {
			mu.Lock()
			k := len(seen)
			var last time.Time
			for _, t := range seen {
				if t.After(last) {
					last = t
				}
			}
			mu.Unlock()
			if k == n {
				ds = append(ds, last.Sub(start))
				break
			}
			time.Sleep(time.Millisecond)
		}
		if err := fleet.SetHalt(ctx, e.agent, e.ns, "bench", false, "", "bench"); err != nil {
			b.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(pct(ds, 0.5), "p50-ms")
	b.ReportMetric(pct(ds, 0.99), "p99-ms")
	b.ReportMetric(0, "ns/op")
}

type benv struct{ *env }

func newEnvB(b *testing.B) benv { return benv{newEnvTB(b)} }

func (e benv) joinB(b *testing.B, max config.Limit, pod string, onState ...func(fleet.State)) *fleet.Fleet {
	fc := config.Fleet{Enabled: true, Group: "bench", Namespace: e.ns, Renew: 5 * time.Second, StaleAfter: 30 * time.Second, MaxActive: max}
	o := fleet.Options{Config: fc, Pod: fleet.Pod{Name: pod, Namespace: e.ns}, Agent: journal.Agent{Instance: "i-" + pod}, Client: e.client(b)}
	if len(onState) > 0 {
		o.OnState = onState[0]
	}
	f, err := fleet.New(o)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	for end := time.Now().Add(10 * time.Second); !f.State().Contact; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			b.Fatal("no contact")
		}
	}
	return f
}
