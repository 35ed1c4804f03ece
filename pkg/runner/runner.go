// Package runner drives runs through their write-ahead lifecycle:
//
//	fire → checks → intent (journal, fsync) → inject → active (journal) → hold → revert → record
//
// and, before anything fires, reverses whatever an earlier agent left behind (start-up
// recovery). It owns the rules that span experiments: the persisted halt switch, per-experiment
// concurrency, the global max_active, and the order of the checks.
package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/chaoscron/chaoscron/journal"
	"github.com/chaoscron/chaoscron/pkg/config"
	"github.com/chaoscron/chaoscron/pkg/fault"
	"github.com/chaoscron/chaoscron/pkg/metrics"
	"github.com/chaoscron/chaoscron/pkg/schedule"
)

// Triggers: what started a run.
const (
	TriggerSchedule = "schedule"
	TriggerFire     = "fire"
	TriggerAPI      = "api"
	TriggerSweep    = "sweep"
)

// revertTimeout bounds one revert. Reverts run on a context detached from the run's, because
// the reason a run ends early (shutdown, halt) is a cancellation that must not cancel its cleanup.
const revertTimeout = 30 * time.Second

// Options wires a Runner.
type Options struct {
	Config  *config.Config
	Journal *journal.Journal
	Metrics *metrics.Set // nil: a private set nobody scrapes
	Log     *slog.Logger
	Env     fault.Env
	Agent   journal.Agent
	Fleet   Fleet // nil: not in fleet mode
}

// Runner runs experiments. Create it with New; it is safe for concurrent use.
type Runner struct {
	j     *journal.Journal
	m     *metrics.Set
	log   *slog.Logger
	env   fault.Env
	agent journal.Agent
	fleet Fleet
	seq   atomic.Uint64 // per-process run keys handed to Fault.Plan

	openDirty atomic.Bool // the open-runs gauge is stale; see refreshOpen
	openBusy  atomic.Bool // a refreshOpen is reading the journal

	// recovering serialises recoverOpen: the retry loop and an operator's recover must not
	// revert, and record, the same run twice at once.
	recovering sync.Mutex
	// sweeping keeps a sweep and a sweepable fault's intent-to-inject apart (see sweep).
	sweeping sync.RWMutex

	mu        sync.Mutex
	cfg       *config.Config
	cal       *schedule.Calendar
	exps      map[string]*experiment
	active    map[*run]struct{} // runs between reservation and recorded revert
	running   map[string]int    // of those, per experiment name
	ends      map[string]*ends  // of those in place, per fault type, by planned end
	halted    bool
	suspended *SkipError               // set by the fleet (see Suspend)
	pauses    map[string]journal.Pause // persisted pause flags, by experiment name
	draining  bool                     // shutting down: nothing new starts
	wg        sync.WaitGroup
	sched     *schedule.Scheduler
}

type experiment struct {
	cfg    config.Experiment
	f      fault.Fault
	sched  cron.Schedule
	dice   *schedule.Dice
	params []byte // the fault params as JSON, stored with every run
	paused bool
	trips  int // runs in a row ended by the stop condition (see tripped)
}

type run struct {
	id     uint64
	exp    string
	ftype  string
	f      fault.Fault
	undo   fault.Undo
	end    time.Time // planned end, set once the fault is in place
	endAt  int       // 1 + its index in r.ends[ftype]; 0: not there
	cancel context.CancelCauseFunc
	done   chan struct{}
}

// New validates that every experiment's fault can be built and returns a Runner. It does not
// touch the system; call Recover, then Start.
func New(opt Options) (*Runner, error) {
	if opt.Journal == nil || opt.Config == nil {
		return nil, errors.New("runner: config and journal are required")
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.Metrics == nil {
		opt.Metrics = metrics.New(opt.Agent.Version)
	}
	opt.Env = opt.Env.WithDefaults()
	r := &Runner{
		j:       opt.Journal,
		m:       opt.Metrics,
		log:     opt.Log,
		env:     opt.Env,
		agent:   opt.Agent,
		fleet:   opt.Fleet,
		active:  map[*run]struct{}{},
		running: map[string]int{},
		ends:    map[string]*ends{},
	}
	pauses, err := r.j.Paused()
	if err != nil {
		return nil, err
	}
	r.pauses = pauses
	if err := r.load(opt.Config); err != nil {
		return nil, err
	}
	halted, _, _, err := r.j.Halted()
	if err != nil {
		return nil, fmt.Errorf("read halt switch: %w", err)
	}
	r.halted = halted
	r.m.Halted.Set(b2f(halted))
	r.refreshOpen()
	return r, nil
}

// load builds experiments, faults and the calendar from cfg and swaps them in.
func (r *Runner) load(cfg *config.Config) error {
	cal, exps, err := r.build(cfg)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, e := range exps {
		_, e.paused = r.pauses[name]
		r.m.Paused.WithLabelValues(name).Set(b2f(e.paused))
	}
	r.cfg, r.cal, r.exps = cfg, cal, exps
	return nil
}

// build makes the calendar and the enabled experiments, with their faults, from cfg.
// It changes nothing in r.
func (r *Runner) build(cfg *config.Config) (*schedule.Calendar, map[string]*experiment, error) {
	loc := cfg.Location()
	cal, err := Calendar(cfg)
	if err != nil {
		return nil, nil, err
	}
	exps := map[string]*experiment{}
	for _, e := range cfg.Experiments {
		if e.Disabled {
			continue
		}
		env := r.env
		if e.Fault.Type == "http" {
			// Per experiment: its proxy counts requests under the experiment's name. Only
			// the http fault observes anything; others' series would stay at zero forever.
			env.Observe = r.m.Observer(e.Name)
		}
		f, err := fault.New(e.Fault.Type, e.Fault.Params, env)
		if err != nil {
			return nil, nil, fmt.Errorf("experiment %s: %w", e.Name, err)
		}
		s, err := schedule.Parse(e.Schedule, loc)
		if err != nil {
			return nil, nil, fmt.Errorf("experiment %s: %w", e.Name, err)
		}
		params, err := marshalParams(e.Fault.Params)
		if err != nil {
			return nil, nil, fmt.Errorf("experiment %s: %w", e.Name, err)
		}
		exps[e.Name] = &experiment{cfg: e, f: f, sched: s, dice: schedule.NewDice(cfg.Agent.Seed, e.Name), params: params}
		r.m.Touch(e.Fault.Type)
	}
	return cal, exps, nil
}

// Calendar builds cfg's windows and blackouts in the agent's time zone, as the runner checks
// them; `chaoscron next` previews with the same calendar.
func Calendar(cfg *config.Config) (*schedule.Calendar, error) {
	loc := cfg.Location()
	cal := &schedule.Calendar{Windows: map[string]schedule.Window{}}
	for name, w := range cfg.Windows {
		s, err := schedule.Parse(w.Schedule, loc)
		if err != nil {
			return nil, fmt.Errorf("window %s: %w", name, err)
		}
		cal.Windows[name] = schedule.Window{Name: name, Schedule: s, Duration: w.Duration}
	}
	for name, w := range cfg.Blackouts {
		s, err := schedule.Parse(w.Schedule, loc)
		if err != nil {
			return nil, fmt.Errorf("blackout %s: %w", name, err)
		}
		cal.Blackouts = append(cal.Blackouts, schedule.Window{Name: name, Schedule: s, Duration: w.Duration})
	}
	// By name, so that of two blackouts open equally long the same one is named every time.
	slices.SortFunc(cal.Blackouts, func(a, b schedule.Window) int { return strings.Compare(a.Name, b.Name) })
	return cal, nil
}

// Config returns the config in force.
func (r *Runner) Config() *config.Config {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cfg
}

// Start schedules every experiment. Call Recover first: nothing may fire before the faults an
// earlier agent left behind are reversed.
func (r *Runner) Start(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sched = schedule.NewScheduler(r.cfg.Location(), r.log)
	for name, e := range r.exps {
		r.addEntry(name, e)
	}
	r.sched.Start(ctx)
	r.refreshNextLocked()
}

func (r *Runner) addEntry(name string, e *experiment) {
	r.sched.Add(schedule.Entry{Name: name, Schedule: e.sched, Jitter: e.cfg.Jitter, Dice: e.dice, Inline: true},
		func(ctx context.Context, name string, at time.Time) {
			// On the scheduler's loop: decide now, and leave the journal and the fault to
			// a goroutine (see decide).
			a, err := r.decide(ctx, name, TriggerSchedule, at)
			if err != nil {
				r.log.Warn("fire failed", "experiment", name, "err", err)
				return
			}
			if a.skip != nil && !a.record {
				r.refreshNext(name)
				return
			}
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				if _, err := r.carry(a); err != nil && !IsSkip(err) {
					r.log.Warn("fire failed", "experiment", name, "err", err)
				}
				r.refreshNext(name)
			}()
		})
}

// refreshNext sets the named experiment's next-fire gauge. Only a fired entry's next fire
// moves: refreshing every experiment's on each fire made 200 experiments on one tick cost
// 40,000 look-ups under r.mu.
func (r *Runner) refreshNext(name string) {
	r.mu.Lock()
	s := r.sched
	r.mu.Unlock()
	if t, ok := s.NextFire(name); ok {
		r.m.NextFire.WithLabelValues(name).Set(float64(t.Unix()))
	}
}

func (r *Runner) refreshNextLocked() {
	if r.sched == nil {
		return
	}
	for name := range r.exps {
		if t, ok := r.sched.NextFire(name); ok {
			r.m.NextFire.WithLabelValues(name).Set(float64(t.Unix()))
		}
	}
}

// Shutdown stops scheduling, ends every active run early (reason "shutdown"), and waits until
// each is reverted and recorded or ctx ends. What is still open then is left to recovery.
func (r *Runner) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	r.draining = true
	s := r.sched
	r.mu.Unlock()
	if s != nil {
		s.Stop()
	}
	r.abortAll(errors.New("shutdown"))
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("shutdown: runs still reverting: %w", ctx.Err())
	}
}

// Wait blocks until every run started so far has finished.
func (r *Runner) Wait() { r.wg.Wait() }

func (r *Runner) abortAll(cause error) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	for rn := range r.active {
		rn.cancel(cause)
	}
	return len(r.active)
}

// refreshOpen sets the open-runs gauge from the journal. Every finished run calls it, and
// OpenRuns decodes each open record, so with many runs ending together (200 experiments on
// the same tick) the calls cost O(open²) decoding and starve the scheduler of CPU. Calls
// that overlap are coalesced: a call that finds another reading only marks the gauge stale,
// and the reader reads again until no call has marked it since, so the gauge still ends at
// the journal's count after the last change.
func (r *Runner) refreshOpen() {
	r.openDirty.Store(true)
	for r.openDirty.Load() {
		if !r.openBusy.CompareAndSwap(false, true) {
			return // the reader sees the mark and reads again
		}
		for r.openDirty.Swap(false) {
			if n, err := r.j.OpenCount(); err == nil {
				r.m.OpenRuns.Set(float64(n))
			}
		}
		r.openBusy.Store(false)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
