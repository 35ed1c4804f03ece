// Package cpu is the "cpu" fault: it keeps some CPUs busy for a while.
//
// Parameters:
//
//	workers  number of burning threads, 1..1024 (default: runtime.NumCPU())
//	load     duty cycle of each worker, above 0% and at most 100% (default 100%)
//
// Each worker is a goroutine locked to its own OS thread that, every 100 ms, spins until the
// thread has had load% of that in CPU time and sleeps for the rest; the workers' cycles are
// staggered. So `workers: 2, load: 50%` keeps one CPU's worth of time busy, spread over two
// threads.
//
// The burners are threads of the agent itself: nothing outlives the agent process, so an agent
// that crashes takes its burn with it, and Revert in a process that never injected (start-up
// recovery) has nothing to do and returns nil.
package cpu

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime"
	"sync"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

func init() { fault.Register("cpu", New) }

// maxWorkers is far beyond any sensible burn; it only stops a typo ("workers: 10000") from
// creating thousands of threads in the agent.
const maxWorkers = 1024

// Fault is a configured CPU burn. One Fault may serve several runs at once (an experiment with
// concurrency: allow); each run's burners are kept apart by run id, so reverting one run never
// stops another's.
type Fault struct {
	workers int
	load    fault.Percent
	log     *slog.Logger
}

// live holds the burns of this process by run id. It is process-wide rather than per Fault
// because the burners belong to the process: a Revert through another Fault value (a reloaded
// config, a cleanup retry that rebuilt the fault from the journal) must still stop them.
var live = struct {
	mu   sync.Mutex
	runs map[string]*burn
}{runs: map[string]*burn{}}

var (
	_ fault.Fault     = (*Fault)(nil)
	_ fault.Describer = (*Fault)(nil)
)

type params struct {
	Workers *int           `param:"workers"`
	Load    *fault.Percent `param:"load"`
}

// New validates params and builds a Fault. It starts nothing.
func New(p fault.Params, env fault.Env) (fault.Fault, error) {
	var in params
	var es fault.Errors = fault.FieldErrors(fault.Decode(p, &in))
	f := &Fault{
		workers: runtime.NumCPU(),
		load:    100,
		log:     env.WithDefaults().Log,
	}
	if in.Workers != nil {
		switch w := *in.Workers; {
		case w < 1:
			es.Add("workers", fmt.Sprintf("%d is below 1", w))
		case w > maxWorkers:
			es.Add("workers", fmt.Sprintf("%d is above the limit of %d", w, maxWorkers))
		default:
			f.workers = w
		}
	}
	if in.Load != nil {
		if *in.Load <= 0 {
			es.Add("load", fmt.Sprintf("%s must be above 0%%", *in.Load))
		} else {
			f.load = *in.Load
		}
	}
	if err := es.Err(); err != nil {
		return nil, err
	}
	return f, nil
}

// undo is the JSON the journal keeps for a run. Workers and load are informational (the
// journal shows what ran); only Run is needed to stop the burn.
type undo struct {
	Run     string        `json:"run"`
	Workers int           `json:"workers"`
	Load    fault.Percent `json:"load"`
}

// Describe says in one line what Inject will do.
func (f *Fault) Describe() string {
	return fmt.Sprintf("burn %d CPU worker(s) at %s load", f.workers, f.load)
}

// Plan returns the undo for run, e.g. {"run":"42","workers":2,"load":60}. It touches nothing.
func (f *Fault) Plan(_ context.Context, run string) (fault.Undo, error) {
	return json.Marshal(undo{Run: run, Workers: f.workers, Load: f.load})
}

// Inject starts the burners described by plan and returns at once. They run until Revert or
// until ctx is done, whichever comes first, so ctx must live as long as the run (the run's own
// context, not a short timeout for the inject step).
func (f *Fault) Inject(ctx context.Context, plan fault.Undo) (fault.Undo, error) {
	var u undo
	if err := json.Unmarshal(plan, &u); err != nil {
		return nil, fmt.Errorf("cpu: decode plan: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("cpu: inject: %w", err)
	}
	// The plan was made by this Fault, but a plan edited by hand must not make the agent start
	// a million threads either.
	if u.Workers < 1 || u.Workers > maxWorkers || u.Load <= 0 || u.Load > 100 {
		return nil, fmt.Errorf("cpu: plan out of range: %d workers at %s", u.Workers, u.Load)
	}

	live.mu.Lock()
	defer live.mu.Unlock()
	if _, dup := live.runs[u.Run]; dup {
		return nil, fmt.Errorf("cpu: run %q is already burning", u.Run)
	}
	b := start(ctx, u.Workers, u.Load.Fraction(), defaultPeriod)
	live.runs[u.Run] = b
	// Forget the run once its burners are gone by ctx, too.
	go func() {
		<-b.done
		f.forget(u.Run, b)
	}()
	f.log.Debug("cpu burn started", "run", u.Run, "workers", u.Workers, "load", u.Load.String())
	return plan, nil
}

// Revert stops the run's burners and waits until every one of them has returned. It is
// idempotent, and a no-op returning nil for a run this Fault does not know: burners are threads
// of the agent, so in a process that never injected (start-up recovery after a crash) there is
// nothing left to stop.
func (f *Fault) Revert(ctx context.Context, raw fault.Undo) error {
	if len(raw) == 0 {
		return nil // Inject never produced anything.
	}
	var u undo
	if err := json.Unmarshal(raw, &u); err != nil {
		return fmt.Errorf("cpu: decode undo: %w", err)
	}
	live.mu.Lock()
	b := live.runs[u.Run]
	live.mu.Unlock()
	if b == nil {
		return nil
	}
	b.stop()
	select {
	case <-b.done:
		f.forget(u.Run, b)
		f.log.Debug("cpu burn stopped", "run", u.Run)
		return nil
	case <-ctx.Done():
		// The burners have been told to stop and will within one spin check; a later Revert
		// waits for them again.
		return fmt.Errorf("cpu: wait for burners of run %q: %w", u.Run, ctx.Err())
	}
}

// forget drops run's record if it still is b (not a later burn of the same run id).
func (f *Fault) forget(run string, b *burn) {
	live.mu.Lock()
	defer live.mu.Unlock()
	if live.runs[run] == b {
		delete(live.runs, run)
	}
}
