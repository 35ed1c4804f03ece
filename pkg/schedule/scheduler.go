package schedule

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
)

// Job is what an entry runs. scheduled is the tick it fires for, before jitter, so lateness
// (jitter plus scheduling delay) can be measured. ctx is cancelled by Scheduler.Stop or when
// the context given to Start ends; a job may be handed a context that is already cancelled
// (Stop raced with the call) and must check it before it changes anything.
type Job func(ctx context.Context, name string, scheduled time.Time)

// Entry is one named, scheduled job. Jitter delays each call by a random duration in
// [0, Jitter) drawn from Dice (a fresh random Dice if nil).
//
// Inline says the job returns at once, handing any slow work to a goroutine of its own, so
// the loop calls it itself, in turn with the tick's other inline jobs, instead of starting a
// goroutine for the call. A job that blocks then holds up every entry. Calls with jitter
// still get their own goroutine, which waits the jitter out.
type Entry struct {
	Name     string
	Schedule cron.Schedule
	Jitter   time.Duration
	Dice     *Dice
	Inline   bool
}

// Scheduler fires jobs from cron entries: robfig's cron.Schedule decides when, and a run
// loop of its own fires. It recovers panics, logs through slog, gives every call a context
// that Stop cancels, and makes jitter waits cancellable. It is safe for concurrent use,
// including from inside its own jobs (a job may call NextFire, Add or Remove).
//
// The loop is its own rather than cron.Cron's because of punctuality (BenchmarkPunctuality
// measures both side by side; docs/performance.md has the figures): cron computes each
// entry's next time and logs between starting one call and the next, and sorts every entry
// on every wake. This loop starts every due call first and does its bookkeeping afterwards. It also
// knows the tick each call fires for, which cron does not pass to its jobs.
type Scheduler struct {
	loc *time.Location
	log *slog.Logger

	mu       sync.Mutex
	entries  map[string]*entry
	ctx      context.Context // nil until Start
	cancel   context.CancelFunc
	started  bool
	stopped  bool
	changed  chan struct{} // a wake-up for the loop: the entries changed; buffered, 1
	done     chan struct{} // closed when the loop has returned
	calls    sync.WaitGroup
	onJitter func(name string, d time.Duration) // test hook: a jitter wait has begun
}

type entry struct {
	Entry
	job  Job
	log  *slog.Logger
	next time.Time // the next tick while started; zero: never again
}

// NewScheduler returns a stopped Scheduler that evaluates schedules without their own zone in
// loc (nil means UTC). log nil discards.
func NewScheduler(loc *time.Location, log *slog.Logger) *Scheduler {
	if loc == nil {
		loc = time.UTC
	}
	loc = concrete(loc)
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{
		loc:     loc,
		log:     log.With("component", "schedule"),
		entries: map[string]*entry{},
		changed: make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
}

// Add schedules job under e.Name. It may be called before or after Start. A name that is
// already present is replaced (hot reload); calls of the old job already under way finish.
func (s *Scheduler) Add(e Entry, job Job) {
	log := s.log.With("entry", e.Name)
	if e.Dice == nil {
		e.Dice = NewDice(0, e.Name)
	}
	if e.Schedule == nil {
		// An entry without a schedule is kept (it is listed) but never fires.
		log.Error("entry has no schedule; it will never fire")
		e.Schedule = never{}
	}
	n := &entry{Entry: e, job: job, log: log}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started && !s.stopped {
		n.next = n.after(time.Now().In(s.loc))
	}
	s.entries[e.Name] = n
	s.poke()
}

// Remove unschedules the named entry; calls already under way finish. Unknown names are
// ignored.
func (s *Scheduler) Remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.entries[name]; ok {
		delete(s.entries, name)
		s.poke()
	}
}

// poke wakes the loop to look at the entries again. s.mu is held.
func (s *Scheduler) poke() {
	select {
	case s.changed <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// Start begins firing. Jobs get a context derived from ctx that Stop also cancels; when ctx
// ends, firing stops. Start is a no-op when already started or stopped: a stopped Scheduler
// is replaced, not restarted.
func (s *Scheduler) Start(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.stopped {
		return
	}
	s.started = true
	s.ctx, s.cancel = context.WithCancel(ctx)
	now := time.Now().In(s.loc)
	for _, e := range s.entries {
		e.next = e.after(now)
	}
	go s.run(s.ctx)
}

// Stop stops firing, cancels the context of every call (which ends pending jitter waits) and
// waits for calls under way to return. It is idempotent and may be called without Start.
func (s *Scheduler) Stop() {
	s.mu.Lock()
	s.stopped = true
	cancel, started := s.cancel, s.started
	s.mu.Unlock()
	// s.mu must not be held while waiting: a running job may call NextFire, Add or Remove.
	if cancel != nil {
		cancel()
	}
	if started {
		<-s.done
	}
	s.calls.Wait()
}

// spinMax bounds the busy wait before a tick (see run). The loop wakes at most once a second,
// cron's resolution, so this costs at most 0.5% of a core for entries that fire every second,
// and nothing while none fires.
const spinMax = 5 * time.Millisecond

// lagWindow is how many recent timer wake-ups the spin margin is sized from.
const lagWindow = 16

// lags remembers how late the timer woke the loop on its last wake-ups.
type lags struct {
	d [lagWindow]time.Duration
	n int
}

// woke notes a wake-up margin before a tick that was until away (negative: the timer came
// after the tick) and returns how long to spin until the tick. The lag is what the timer
// was late by, whether or not it overshot the tick: a clamped figure could never let the
// margin grow past the lateness it already covers.
func (l *lags) woke(margin, until time.Duration) (spin time.Duration) {
	l.d[l.n%lagWindow] = margin - until
	l.n++
	return min(max(until, 0), margin)
}

// margin is how long before a tick to wake: the worst recent lag and a half millisecond, at
// most spinMax.
func (l *lags) margin() time.Duration {
	m := time.Millisecond // before anything is known
	if l.n > 0 {
		m = slices.Max(l.d[:min(l.n, lagWindow)]) + time.Millisecond/2
	}
	return min(m, spinMax)
}

// run fires due entries until ctx ends.
//
// It wakes a little before each tick and spins the rest of the way. A timer alone comes late
// by a different amount each tick on a virtual machine (milliseconds: an idle virtual CPU is
// halted, and the host takes its time to wake it). The margin follows the lateness seen on recent wake-ups.
func (s *Scheduler) run(ctx context.Context) {
	defer close(s.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var (
		due    []*entry
		inline []dueCall
		lag    lags
		margin time.Duration
	)
	for {
		s.mu.Lock()
		var first time.Time
		for _, e := range s.entries {
			if !e.next.IsZero() && (first.IsZero() || e.next.Before(first)) {
				first = e.next
			}
		}
		s.mu.Unlock()
		var fire <-chan time.Time
		if !first.IsZero() {
			margin = lag.margin()
			timer.Reset(time.Until(first) - margin)
			fire = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-s.changed:
			timer.Stop()
			continue
		case <-fire:
		}
		// Spin on the monotonic clock, bounded by the margin: a wall clock stepped back
		// must not turn this into a long busy wait (the loop just goes round again).
		wait := lag.woke(margin, time.Until(first))
		for end := time.Now().Add(wait); time.Now().Before(end); {
			runtime.Gosched()
		}

		// Start every due call before anything else: the last call of a busy tick is as
		// late as the work done before it.
		now := time.Now().In(s.loc)
		due, inline = due[:0], inline[:0]
		s.mu.Lock()
		for _, e := range s.entries {
			if !e.next.IsZero() && !e.next.After(now) {
				due = append(due, e)
				s.calls.Add(1)
				if e.Inline && e.Jitter <= 0 {
					inline = append(inline, dueCall{e, e.next})
				} else {
					go s.call(ctx, e, e.next)
				}
			}
		}
		s.mu.Unlock()
		// Outside s.mu: a job may call NextFire, Add or Remove.
		for _, c := range inline {
			s.callInline(ctx, c.e, c.tick)
		}
		// A tick missed while the loop was held up (a suspended machine, say) fires once,
		// late, and the entry carries on from now, as cron does.
		s.mu.Lock()
		for _, e := range due {
			e.next = e.after(now)
		}
		s.mu.Unlock()
	}
}

// dueCall is one due call of an entry, for its tick.
type dueCall struct {
	e    *entry
	tick time.Time
}

// callInline runs an inline job on the loop, recovering a panic.
func (s *Scheduler) callInline(ctx context.Context, e *entry, tick time.Time) {
	defer s.calls.Done()
	defer e.recoverJob()
	if ctx.Err() == nil {
		e.job(ctx, e.Name, tick)
	}
}

// recoverJob logs a job's panic instead of letting it end the process. Deferred.
func (e *entry) recoverJob() {
	if r := recover(); r != nil {
		e.log.Error("job panicked", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	}
}

// after is the entry's first tick after now; zero if it will never fire (again). A custom
// schedule that panics stops firing instead of taking the process down.
func (e *entry) after(now time.Time) (next time.Time) {
	defer func() {
		if r := recover(); r != nil {
			e.log.Error("schedule panicked; the entry will not fire again", "panic", r)
			next = time.Time{}
		}
	}()
	return e.Schedule.Next(now)
}

// NextFire returns when the named entry fires next (before jitter), or false if it is unknown,
// will never fire, or the Scheduler has stopped (by Stop or its context). Before Start it
// answers as if started now.
func (s *Scheduler) NextFire(name string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[name]
	if !ok || s.stopped || (s.ctx != nil && s.ctx.Err() != nil) {
		return time.Time{}, false
	}
	now := time.Now().In(s.loc)
	next := e.next
	// Before Start nothing is computed yet, and for an instant after a tick the recorded
	// time is the tick being fired; in both cases ask the schedule.
	if !next.After(now) {
		next = e.after(now)
	}
	return next, !next.IsZero()
}

// Entries returns the names of all entries, sorted.
func (s *Scheduler) Entries() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.entries))
	for name := range s.entries {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// call runs one call of e for tick: it waits out the jitter (cancellable), then runs the job
// with the scheduler's context, recovering a panic.
func (s *Scheduler) call(ctx context.Context, e *entry, tick time.Time) {
	defer s.calls.Done()
	defer e.recoverJob()
	if ctx.Err() != nil {
		return
	}
	if e.Jitter > 0 {
		d := e.Dice.Duration(e.Jitter)
		s.mu.Lock()
		hook := s.onJitter
		s.mu.Unlock()
		if hook != nil {
			hook(e.Name, d)
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			// Not calling the job is deliberate: a run must never start while the agent
			// shuts down, and the job might not check ctx before injecting.
			e.log.Debug("jitter wait cancelled", "scheduled", tick, "jitter", d)
			return
		case <-t.C:
		}
	}
	e.job(ctx, e.Name, tick)
}

// never is a schedule without activations.
type never struct{}

func (never) Next(time.Time) time.Time { return time.Time{} }
