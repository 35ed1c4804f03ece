package schedule

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/internal/testenv"
)

// The tests in this file that use real time run in parallel, so together they take about as
// long as the longest one (about 3 s) rather than the sum.

// call is one observed job invocation.
type call struct {
	name      string
	scheduled time.Time
	at        time.Time
}

// recorder collects calls from any number of jobs.
type recorder struct {
	mu    sync.Mutex
	calls []call
}

func (r *recorder) job(ctx context.Context, name string, scheduled time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, call{name, scheduled, time.Now()})
}

func (r *recorder) of(name string) []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []call
	for _, c := range r.calls {
		if c.name == name {
			out = append(out, c)
		}
	}
	return out
}

func TestSchedulerFiresEverySecond(t *testing.T) {
	t.Parallel()
	every := mustParse(t, "* * * * * *", time.UTC)
	var rec, old recorder
	s := NewScheduler(time.UTC, nil)
	s.Add(Entry{Name: "tick", Schedule: every}, rec.job)
	s.Add(Entry{Name: "jittered", Schedule: every, Jitter: 300 * time.Millisecond, Dice: NewDice(5, "jittered")}, rec.job)
	s.Add(Entry{Name: "replaced", Schedule: every}, old.job)
	s.Add(Entry{Name: "replaced", Schedule: every}, rec.job) // hot reload: replaces the first
	s.Add(Entry{Name: "removed-before", Schedule: every}, rec.job)
	s.Remove("removed-before")
	s.Start(t.Context())
	s.Add(Entry{Name: "removed-after", Schedule: every}, rec.job)
	s.Remove("removed-after")

	time.Sleep(2500 * time.Millisecond)
	s.Stop()
	stoppedAt := time.Now()

	// 2.5 s hold two or three whole seconds; allow one either way for a loaded machine.
	tests := []struct {
		name     string
		min, max int
		jitter   time.Duration
	}{
		{"tick", 1, 4, 0},
		{"jittered", 1, 4, 300 * time.Millisecond},
		{"replaced", 1, 4, 0},
		{"removed-before", 0, 0, 0},
		{"removed-after", 0, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls := rec.of(tc.name)
			if n := len(calls); n < tc.min || n > tc.max {
				t.Fatalf("%d calls in 2.5 s, want %d..%d", n, tc.min, tc.max)
			}
			for i, c := range calls {
				if c.scheduled.Nanosecond() != 0 {
					t.Errorf("call %d: scheduled %s is not a whole-second tick", i, c.scheduled)
				}
				late := c.at.Sub(c.scheduled)
				if late < 0 || late > tc.jitter+time.Second {
					t.Errorf("call %d: %s after its tick, want 0..%s", i, late, tc.jitter+time.Second)
				}
				if i > 0 && !c.scheduled.After(calls[i-1].scheduled) {
					t.Errorf("call %d: scheduled %s not after the previous %s", i, c.scheduled, calls[i-1].scheduled)
				}
				if c.at.After(stoppedAt) {
					t.Errorf("call %d at %s, after Stop returned", i, c.at)
				}
			}
		})
	}
	if n := len(old.of("replaced")); n != 0 {
		t.Errorf("the replaced job ran %d times", n)
	}
	if got, want := s.Entries(), []string{"jittered", "replaced", "tick"}; !slices.Equal(got, want) {
		t.Errorf("Entries() = %v, want %v", got, want)
	}
}

func TestSchedulerStopCancelsJitter(t *testing.T) {
	t.Parallel()
	var rec recorder
	s := NewScheduler(time.UTC, nil)
	waiting := make(chan time.Duration, 1)
	s.onJitter = func(name string, d time.Duration) {
		select {
		case waiting <- d:
		default:
		}
	}
	s.Add(Entry{Name: "slow", Schedule: mustParse(t, "* * * * * *", time.UTC), Jitter: time.Hour, Dice: NewDice(11, "slow")}, rec.job)
	s.Start(t.Context())

	var d time.Duration
	select {
	case d = <-waiting:
	case <-time.After(3 * time.Second):
		s.Stop()
		t.Fatal("no jitter wait began within 3 s")
	}
	if d <= 0 || d >= time.Hour {
		t.Errorf("jitter %s, want in (0, 1h)", d)
	}
	start := time.Now()
	s.Stop()
	if took := time.Since(start); took > time.Second {
		t.Errorf("Stop took %s with a pending jitter wait, want it cancelled promptly", took)
	}
	// A cancelled jitter wait must not start a run: the agent is shutting down.
	if n := len(rec.of("slow")); n != 0 {
		t.Errorf("job called %d times after its jitter wait was cancelled", n)
	}
}

func TestSchedulerStopCancelsAndWaits(t *testing.T) {
	t.Parallel()
	s := NewScheduler(time.UTC, nil)
	entered := make(chan struct{})
	var once sync.Once
	var (
		mu       sync.Mutex
		seen     error
		returned bool
	)
	s.Add(Entry{Name: "hold", Schedule: mustParse(t, "* * * * * *", time.UTC)}, func(ctx context.Context, name string, _ time.Time) {
		first := false
		once.Do(func() { first = true; close(entered) })
		if !first {
			return
		}
		<-ctx.Done()
		time.Sleep(100 * time.Millisecond) // cleanup that Stop must wait for
		mu.Lock()
		seen, returned = ctx.Err(), true
		mu.Unlock()
	})
	s.Start(t.Context())
	select {
	case <-entered:
	case <-time.After(3 * time.Second):
		s.Stop()
		t.Fatal("job did not start within 3 s")
	}
	s.Stop()
	mu.Lock()
	defer mu.Unlock()
	if !returned {
		t.Fatal("Stop returned before the job did")
	}
	if !errors.Is(seen, context.Canceled) {
		t.Fatalf("job saw ctx error %v, want context.Canceled", seen)
	}
}

func TestSchedulerParentContextEnds(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	s := NewScheduler(time.UTC, nil)
	defer s.Stop()
	var rec recorder
	entered := make(chan error, 1)
	s.Add(Entry{Name: "hold", Schedule: mustParse(t, "* * * * * *", time.UTC)}, func(jctx context.Context, name string, at time.Time) {
		rec.job(jctx, name, at)
		if len(rec.of(name)) == 1 {
			<-jctx.Done()
			entered <- jctx.Err()
		}
	})
	s.Start(ctx)
	time.Sleep(1100 * time.Millisecond) // at least one tick
	cancel()
	select {
	case err := <-entered:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("job saw %v, want context.Canceled", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("job did not observe the parent context ending")
	}
	n := len(rec.of("hold"))
	time.Sleep(1200 * time.Millisecond) // would hold at least one more tick
	if m := len(rec.of("hold")); m != n {
		t.Fatalf("%d calls after the parent context ended", m-n)
	}
}

func TestSchedulerRecoversPanic(t *testing.T) {
	t.Parallel()
	for _, inline := range []bool{false, true} {
		t.Run(map[bool]string{false: "goroutine", true: "inline"}[inline], func(t *testing.T) {
			t.Parallel()
			var logs testenv.Buffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelError}))
			s := NewScheduler(time.UTC, log)
			var (
				mu    sync.Mutex
				calls int
			)
			twice := make(chan struct{})
			s.Add(Entry{Name: "boom", Schedule: mustParse(t, "* * * * * *", time.UTC), Inline: inline}, func(context.Context, string, time.Time) {
				mu.Lock()
				calls++
				if calls == 2 {
					close(twice)
				}
				mu.Unlock()
				panic("injected test panic")
			})
			s.Start(t.Context())
			select {
			case <-twice: // the process survived the first panic and the entry keeps firing
			case <-time.After(3500 * time.Millisecond):
				t.Error("panicking job was not called a second time within 3.5 s")
			}
			s.Stop()
			out := logs.String()
			for _, want := range []string{"injected test panic", "entry=boom", "job panicked"} {
				if !strings.Contains(out, want) {
					t.Errorf("log lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

// Inline jobs are called by the loop itself, one after another and outside the scheduler's
// lock; other jobs each get a goroutine.
func TestSchedulerInline(t *testing.T) {
	t.Parallel()
	every := mustParse(t, "* * * * * *", time.UTC)
	s := NewScheduler(time.UTC, nil)
	var (
		mu               sync.Mutex
		inflight, most   int
		inlineN, spawned int
	)
	const hold = 30 * time.Millisecond
	job := func(_ context.Context, name string, _ time.Time) {
		if _, ok := s.NextFire(name); !ok { // would deadlock if called under s.mu
			t.Errorf("NextFire(%s) from its own job: none", name)
		}
		mu.Lock()
		inlineN++
		inflight++
		most = max(most, inflight)
		mu.Unlock()
		time.Sleep(hold)
		mu.Lock()
		inflight--
		mu.Unlock()
	}
	for _, name := range []string{"a", "b", "c"} {
		s.Add(Entry{Name: name, Schedule: every, Inline: true}, job)
	}
	s.Add(Entry{Name: "own", Schedule: every}, func(context.Context, string, time.Time) {
		mu.Lock()
		spawned++
		mu.Unlock()
		time.Sleep(10 * hold) // a goroutine's call does not hold up the loop
	})
	s.Start(t.Context())
	time.Sleep(2500 * time.Millisecond)
	s.Stop()
	mu.Lock()
	defer mu.Unlock()
	if inlineN < 6 || spawned < 2 {
		t.Fatalf("calls: %d inline, %d own; want at least 6 and 2 in 2.5 s", inlineN, spawned)
	}
	if most != 1 {
		t.Errorf("inline jobs overlapped (%d at once); want them called in turn", most)
	}
}

func TestSchedulerBookkeeping(t *testing.T) {
	hourly := mustParse(t, "0 * * * *", time.UTC)
	s := NewScheduler(nil, nil)
	var rec recorder
	s.Add(Entry{Name: "b", Schedule: hourly}, rec.job)
	s.Add(Entry{Name: "a", Schedule: hourly}, rec.job)
	s.Add(Entry{Name: "c", Schedule: hourly}, rec.job)
	s.Add(Entry{Name: "a", Schedule: hourly}, rec.job)
	s.Add(Entry{Name: "broken"}, rec.job) // no schedule: listed, never fires
	s.Remove("c")
	s.Remove("does-not-exist")

	if got, want := s.Entries(), []string{"a", "b", "broken"}; !slices.Equal(got, want) {
		t.Fatalf("Entries() = %v, want %v", got, want)
	}
	check := func(stage string) {
		t.Helper()
		now := time.Now()
		next, ok := s.NextFire("a")
		if !ok || !next.After(now) || next.Sub(now) > time.Hour || next.Minute() != 0 || next.Second() != 0 {
			t.Errorf("%s: NextFire(a) = %s, %v; want the next whole hour after %s", stage, next, ok, now)
		}
		for _, name := range []string{"c", "broken", "nope"} {
			if next, ok := s.NextFire(name); ok {
				t.Errorf("%s: NextFire(%s) = %s, want none", stage, name, next)
			}
		}
	}
	check("before Start")
	s.Start(t.Context())
	check("after Start")
	s.Stop()
	s.Stop() // idempotent
	if next, ok := s.NextFire("a"); ok {
		t.Errorf("after Stop: NextFire(a) = %s, want none", next)
	}
	if n := len(rec.calls); n != 0 {
		t.Errorf("%d calls of hourly jobs", n)
	}
}

func TestSchedulerStopWithoutStart(t *testing.T) {
	s := NewScheduler(time.UTC, nil)
	s.Add(Entry{Name: "x", Schedule: mustParse(t, "* * * * * *", time.UTC)}, func(context.Context, string, time.Time) {})
	done := make(chan struct{})
	go func() { s.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Stop without Start blocked")
	}
	s.Start(t.Context()) // no-op after Stop
	if s.ctx != nil {
		t.Fatal("Start after Stop started the scheduler")
	}
}

// panicky is a broken custom schedule.
type panicky struct{}

func (panicky) Next(time.Time) time.Time { panic("broken schedule") }

// A schedule that panics stops its entry, logged, and takes nothing else down.
func TestSchedulerPanickingSchedule(t *testing.T) {
	t.Parallel()
	var logs testenv.Buffer
	s := NewScheduler(time.UTC, slog.New(slog.NewTextHandler(&logs, nil)))
	var rec recorder
	s.Add(Entry{Name: "broken", Schedule: panicky{}}, rec.job)
	s.Add(Entry{Name: "tick", Schedule: mustParse(t, "* * * * * *", time.UTC)}, rec.job)
	if next, ok := s.NextFire("broken"); ok {
		t.Errorf("NextFire(broken) = %s, want none", next)
	}
	s.Start(t.Context())
	deadline := time.Now().Add(3 * time.Second)
	for len(rec.of("tick")) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	s.Stop()
	if len(rec.of("tick")) == 0 {
		t.Error("the healthy entry never fired next to a panicking schedule")
	}
	if n := len(rec.of("broken")); n != 0 {
		t.Errorf("the broken entry fired %d times", n)
	}
	if !strings.Contains(logs.String(), "broken schedule") {
		t.Errorf("panic not logged: %s", logs.String())
	}
}

// The spin margin grows to cover a timer that came after the tick, and shrinks back as
// the late wake-up leaves the window; it never exceeds spinMax.
func TestLagsMargin(t *testing.T) {
	var l lags
	ms := time.Millisecond
	if m := l.margin(); m != ms {
		t.Fatalf("first margin %v, want 1ms", m)
	}
	if spin := l.woke(ms, -2*ms); spin != 0 { // woke 3 ms late: 2 ms after the tick
		t.Fatalf("spin %v after overshooting the tick, want 0", spin)
	}
	if m := l.margin(); m != 3*ms+ms/2 {
		t.Fatalf("margin after a 3 ms lag = %v, want 3.5ms", m)
	}
	if spin := l.woke(3*ms+ms/2, 3*ms); spin != 3*ms {
		t.Fatalf("spin %v, want the 3 ms left to the tick", spin)
	}
	if spin := l.woke(ms, 5*ms); spin != ms { // a wall clock stepped back: never spin past the margin
		t.Fatalf("spin %v, want at most the margin", spin)
	}
	l.woke(ms, -time.Second)
	if m := l.margin(); m != spinMax {
		t.Fatalf("margin %v after a 1 s lag, want spinMax", m)
	}
	for range lagWindow {
		l.woke(ms, ms-ms/10) // 0.1 ms late
	}
	if m := l.margin(); m != ms/10+ms/2 {
		t.Fatalf("margin %v once late wake-ups left the window, want 0.6ms", m)
	}
}
