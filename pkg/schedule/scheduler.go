package schedule

import (
	"context"
	"log/slog"
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
type Entry struct {
	Name     string
	Schedule cron.Schedule
	Jitter   time.Duration
	Dice     *Dice
}

// Scheduler fires jobs from cron entries. It wraps a cron.Cron with panic recovery, an slog
// logger, per-call contexts and cancellable jitter. It is safe for concurrent use, including
// from inside its own jobs (a job may call NextFire, Add or Remove).
type Scheduler struct {
	loc  *time.Location
	log  *slog.Logger
	cron *cron.Cron

	mu       sync.Mutex
	entries  map[string]*entry
	ctx      context.Context // nil until Start
	cancel   context.CancelFunc
	started  bool
	stopped  bool
	onJitter func(name string, d time.Duration) // test hook: a jitter wait has begun
}

type entry struct {
	Entry
	id    cron.EntryID
	ticks *tickSchedule
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
	log = log.With("component", "schedule")
	clog := cronLogger{log}
	return &Scheduler{
		loc: loc,
		log: log,
		cron: cron.New(
			cron.WithLocation(loc),
			cron.WithParser(parseFunc(func(spec string) (cron.Schedule, error) { return Parse(spec, loc) })),
			// Backstop for a panic outside the per-entry Recover in Add (e.g. in this package).
			cron.WithChain(cron.Recover(clog)),
			cron.WithLogger(clog),
		),
		entries: map[string]*entry{},
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
		// cron would call Next on nil in its run loop and crash the process; an entry without
		// a schedule is kept (it is listed) but never fires.
		log.Error("entry has no schedule; it will never fire")
		e.Schedule = never{}
	}
	ticks := &tickSchedule{inner: e.Schedule, log: log}
	// A Recover per entry, so the panic log names the entry; the chain's Recover cannot.
	wrapped := cron.NewChain(cron.Recover(cronLogger{log})).Then(s.call(e, ticks, job, log))

	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.entries[e.Name]; ok {
		s.cron.Remove(old.id)
	}
	id := s.cron.Schedule(ticks, wrapped)
	s.entries[e.Name] = &entry{Entry: e, id: id, ticks: ticks}
}

// Remove unschedules the named entry; calls already under way finish. Unknown names are
// ignored.
func (s *Scheduler) Remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.entries[name]; ok {
		s.cron.Remove(old.id)
		delete(s.entries, name)
	}
}

// Start begins firing. Jobs get a context derived from ctx that Stop also cancels; when ctx
// ends, firing stops. Start is a no-op when already started or stopped: the underlying cron
// cannot be restarted cleanly, so a stopped Scheduler is replaced, not restarted.
func (s *Scheduler) Start(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.stopped {
		return
	}
	s.started = true
	s.ctx, s.cancel = context.WithCancel(ctx)
	s.cron.Start()
	// Stop the ticks when the parent context ends, not only on Stop: nothing should fire for
	// an agent that is shutting down. Registered after cron.Start so that an already
	// cancelled ctx cannot stop cron before it starts.
	context.AfterFunc(s.ctx, func() { s.cron.Stop() })
}

// Stop stops firing, cancels the context of every call (which ends pending jitter waits) and
// waits for calls under way to return. It is idempotent and may be called without Start.
func (s *Scheduler) Stop() {
	s.mu.Lock()
	s.stopped = true
	cancel := s.cancel
	s.mu.Unlock()
	// s.mu must not be held while waiting: a running job may call NextFire, Add or Remove.
	if cancel != nil {
		cancel()
	}
	<-s.cron.Stop().Done()
}

// NextFire returns when the named entry fires next (before jitter), or false if it is unknown,
// will never fire, or the Scheduler has stopped (by Stop or its context). Before Start it
// answers as if started now.
func (s *Scheduler) NextFire(name string) (time.Time, bool) {
	s.mu.Lock()
	e, ok := s.entries[name]
	halted := s.stopped || (s.ctx != nil && s.ctx.Err() != nil)
	s.mu.Unlock()
	if !ok || halted {
		return time.Time{}, false
	}
	now := time.Now().In(s.loc)
	next := e.ticks.next()
	// Before Start cron has computed nothing yet, and for an instant after a tick the recorded
	// time is the tick being fired; in both cases ask the schedule.
	if !next.After(now) {
		next = e.ticks.peek(now)
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

// call builds the cron job for one entry: claim the tick, wait out the jitter (cancellable),
// then run job with the scheduler's context.
func (s *Scheduler) call(e Entry, ticks *tickSchedule, job Job, log *slog.Logger) cron.FuncJob {
	return func() {
		scheduled := ticks.claim(time.Now().In(s.loc).Truncate(time.Second))
		s.mu.Lock()
		ctx, hook := s.ctx, s.onJitter
		s.mu.Unlock()
		if ctx == nil || ctx.Err() != nil {
			return
		}
		if e.Jitter > 0 {
			d := e.Dice.Duration(e.Jitter)
			if hook != nil {
				hook(e.Name, d)
			}
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-ctx.Done():
				// Not calling the job is deliberate: a run must never start while the agent
				// shuts down, and the job might not check ctx before injecting.
				log.Debug("jitter wait cancelled", "scheduled", scheduled, "jitter", d)
				return
			case <-t.C:
			}
		}
		job(ctx, e.Name, scheduled)
	}
}

// tickSchedule wraps an entry's schedule to learn the tick each call fires for, which cron
// does not pass to jobs. cron's run loop calls Next once when the entry starts (Start or Add)
// and once right after it starts each call, so the times it returned and no call has claimed
// yet form a queue whose head is the tick of the next call, whether that call's goroutine
// runs before or after the loop asks for the following tick.
type tickSchedule struct {
	inner cron.Schedule
	log   *slog.Logger

	mu      sync.Mutex
	pending []time.Time // returned by Next, not yet claimed, oldest first
	last    time.Time   // the most recent Next result: cron's idea of the next fire
}

// maxPending keeps a broken assumption about cron's call pattern from growing the queue.
const maxPending = 4

// Next implements cron.Schedule. cron calls it in its run loop, outside any Recover, so a
// panicking schedule (one not made by Parse) would end the process; it stops firing instead.
func (t *tickSchedule) Next(now time.Time) (n time.Time) {
	defer func() {
		if r := recover(); r != nil {
			t.log.Error("schedule panicked; the entry will not fire again", "panic", r)
			n = time.Time{}
			t.mu.Lock()
			t.last = n
			t.mu.Unlock()
		}
	}()
	n = t.inner.Next(now)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.last = n
	if !n.IsZero() {
		t.pending = append(t.pending, n)
		if len(t.pending) > maxPending {
			t.pending = t.pending[len(t.pending)-maxPending:]
		}
	}
	return n
}

// claim takes the tick for a call that is starting; fallback if none is recorded.
func (t *tickSchedule) claim(fallback time.Time) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.pending) == 0 {
		return fallback
	}
	tick := t.pending[0]
	t.pending = t.pending[1:]
	return tick
}

// peek asks the wrapped schedule without recording anything, for NextFire.
func (t *tickSchedule) peek(now time.Time) (n time.Time) {
	defer func() {
		if recover() != nil {
			n = time.Time{}
		}
	}()
	return t.inner.Next(now)
}

func (t *tickSchedule) next() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

// never is a schedule without activations.
type never struct{}

func (never) Next(time.Time) time.Time { return time.Time{} }

// parseFunc adapts Parse to cron.ScheduleParser.
type parseFunc func(spec string) (cron.Schedule, error)

func (f parseFunc) Parse(spec string) (cron.Schedule, error) { return f(spec) }

// cronLogger adapts slog to cron.Logger. cron logs every wake-up at Info; that is debug detail
// for an agent, so it goes to Debug, while errors (recovered panics) stay errors.
type cronLogger struct{ log *slog.Logger }

func (l cronLogger) Info(msg string, keysAndValues ...any) {
	l.log.Debug("cron "+msg, keysAndValues...)
}

func (l cronLogger) Error(err error, msg string, keysAndValues ...any) {
	l.log.Error("cron "+msg, append([]any{"err", err}, keysAndValues...)...)
}
