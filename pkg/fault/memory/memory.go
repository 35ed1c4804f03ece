// Package memory is the "memory" fault: the agent allocates a given amount of memory, touches
// every page with incompressible data so it is really resident, holds it, and gives it back to
// the operating system on Revert.
//
// Parameters (exactly one of size and percent):
//
//	size:       256MiB  bytes to allocate (fault.Size)
//	percent:    25%     share of the agent's memory limit: the tightest cgroup limit of its own
//	                    cgroup and its ancestors (v2 memory.max, v1 memory.limit_in_bytes), else
//	                    the host's MemTotal
//	ramp:       30s     optional: reach the size gradually, like a leak (default 0: at once)
//	huge_pages: false   optional: small pages only (default true: transparent huge pages where
//	                    the kernel has them, like stress-ng's --vm-madvise hugepage)
//
// The memory belongs to the agent process, so it cannot outlive it: an agent that crashes or is
// OOM-killed has freed it by dying. Revert in another process therefore has nothing to do and
// succeeds; that is what makes start-up recovery of this fault trivially correct.
package memory

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"time"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

func init() { fault.Register("memory", New) }

// Fault is a configured memory fault.
type Fault struct {
	size    fault.Size    // 0 when percent is used
	percent fault.Percent // 0 when size is used
	ramp    time.Duration
	small   bool // huge_pages: false
	env     fault.Env
}

var (
	_ fault.Fault     = (*Fault)(nil)
	_ fault.Describer = (*Fault)(nil)
)

type params struct {
	Size    *fault.Size    `param:"size"`
	Percent *fault.Percent `param:"percent"`
	Ramp    *time.Duration `param:"ramp"`
	Huge    *bool          `param:"huge_pages"`
}

// New validates params. It reads nothing from the system: the percent is resolved in Plan.
func New(p fault.Params, env fault.Env) (fault.Fault, error) {
	var ps params
	// Decode's problems and the checks below are reported together: one round trip shows
	// them all.
	errs := fault.Errors(fault.FieldErrors(fault.Decode(p, &ps)))
	switch {
	case ps.Size == nil && ps.Percent == nil:
		if !errs.Has("size") && !errs.Has("percent") {
			errs.Add("size", "set size (e.g. 256MiB) or percent (e.g. 25%)")
		}
	case ps.Size != nil && ps.Percent != nil:
		errs.Add("percent", "set either size or percent, not both")
	case ps.Size != nil && *ps.Size <= 0:
		errs.Add("size", "must be above 0")
	case ps.Percent != nil && *ps.Percent <= 0:
		errs.Add("percent", "must be above 0%")
	}
	if ps.Ramp != nil && *ps.Ramp < 0 {
		errs.Add("ramp", "must not be negative")
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	f := &Fault{env: env.WithDefaults()}
	if ps.Size != nil {
		f.size = *ps.Size
	}
	if ps.Percent != nil {
		f.percent = *ps.Percent
	}
	if ps.Ramp != nil {
		f.ramp = *ps.Ramp
	}
	if ps.Huge != nil {
		f.small = !*ps.Huge
	}
	return f, nil
}

// Describe says what the fault will do, for logs and dry runs.
func (f *Fault) Describe() string {
	what := "allocate " + f.size.String()
	if f.percent > 0 {
		what = "allocate " + f.percent.String() + " of the memory limit"
	}
	if f.ramp > 0 {
		what += " over " + f.ramp.String()
	}
	if f.small {
		what += ", without huge pages"
	}
	return what
}

// undo is the fault's undo and plan. Pid and Limit are there for whoever reads the journal.
type undo struct {
	Run   string `json:"run"`
	Bytes int64  `json:"bytes"`
	Ramp  string `json:"ramp,omitempty"`
	Pid   int    `json:"pid"`             // the process that holds (held) the memory
	Limit string `json:"limit,omitempty"` // the limit the size was checked against
}

func decodeUndo(raw fault.Undo) (undo, time.Duration, error) {
	var u undo
	if err := json.Unmarshal(raw, &u); err != nil {
		return u, 0, fmt.Errorf("memory: malformed undo: %w", err)
	}
	if u.Run == "" || u.Bytes <= 0 {
		return u, 0, fmt.Errorf("memory: malformed undo %s: needs run and bytes", raw)
	}
	var ramp time.Duration
	if u.Ramp != "" {
		d, err := time.ParseDuration(u.Ramp)
		if err != nil || d < 0 {
			return u, 0, fmt.Errorf("memory: malformed undo: ramp %q", u.Ramp)
		}
		ramp = d
	}
	return u, ramp, nil
}

// Plan resolves the size and refuses one that would put the agent at risk of being OOM-killed:
// it must fit into limit − usage − margin for every limit that applies (see readBudget).
func (f *Fault) Plan(_ context.Context, run string) (fault.Undo, error) {
	b, err := readBudget(f.env.Proc, f.env.Sys)
	if err != nil {
		return nil, fmt.Errorf("memory: read memory limits: %w", err)
	}
	size := int64(f.size)
	if f.percent > 0 {
		size = int64(f.percent.Fraction() * float64(b.limit.limit))
		if size <= 0 {
			return nil, fmt.Errorf("memory: %s of %s (%s) is nothing", f.percent, fault.Size(b.limit.limit), b.limit.name)
		}
	}
	size = roundUp(size, int64(pageSize))
	// Memory that other runs in this process have mapped but not yet touched is not in the
	// usage figures, but soon will be: count it, so two ramps started together cannot overshoot.
	pending := held.pending()
	if avail := b.avail.headroom() - pending; size > avail {
		c := b.avail
		msg := fmt.Sprintf("memory: %s would risk the agent being OOM-killed: at most %s may be allocated "+
			"(limit %s from %s, in use %s, safety margin %s",
			fault.Size(size), fault.Size(max(avail, 0)), fault.Size(c.limit), c.name, fault.Size(c.usage), fault.Size(margin(c.limit)))
		if pending > 0 {
			msg += fmt.Sprintf(", still to be filled by other runs %s", fault.Size(pending))
		}
		return nil, fmt.Errorf("%s)", msg)
	}
	u := undo{Run: run, Bytes: size, Pid: os.Getpid(), Limit: fault.Size(b.limit.limit).String() + " (" + b.limit.name + ")"}
	if f.ramp > 0 {
		u.Ramp = f.ramp.String()
	}
	return json.Marshal(u)
}

// Inject maps and fills the memory. Without a ramp it returns once every page is resident;
// with one it returns at once and the filling goes on in the background until it is complete
// or Revert stops it. The memory is held until Revert (or until the process exits).
func (f *Fault) Inject(ctx context.Context, plan fault.Undo) (fault.Undo, error) {
	u, ramp, err := decodeUndo(plan)
	if err != nil {
		return nil, err
	}
	seed := f.env.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	// Every run its own pattern, so that not even two runs' pages are alike.
	h := fnv.New64a()
	_, _ = h.Write([]byte(u.Run))
	seed ^= h.Sum64()
	// Not in the plan: Revert unmaps alike whatever the pages' size, and the run's journal
	// record keeps the parameters.
	huge := 0
	if !f.small {
		huge = hugePageSize(f.env.Sys)
	}
	m, err := newMapping(u.Bytes, huge)
	if err != nil {
		return nil, fmt.Errorf("memory: map %s: %w", fault.Size(u.Bytes), err)
	}
	if !held.add(u.Run, m) {
		_ = m.unmap() // fill has not started: nothing else touches it
		return nil, fmt.Errorf("memory: run %s already holds memory", u.Run)
	}
	go m.fill(ramp, newPattern(seed))
	if ramp > 0 {
		f.env.Log.Info("memory ramp started", "run", u.Run, "bytes", u.Bytes, "ramp", ramp, "huge_pages", m.huge)
		return plan, nil
	}
	select {
	case <-m.done:
		f.env.Log.Info("memory allocated", "run", u.Run, "bytes", u.Bytes, "huge_pages", m.huge)
		return plan, nil
	case <-ctx.Done():
		if m := held.take(u.Run); m != nil {
			_ = m.release()
		}
		return nil, fmt.Errorf("memory: fill %s: %w", fault.Size(u.Bytes), ctx.Err())
	}
}

// Revert stops a ramp still in progress and unmaps the memory, which the kernel takes back at
// once. A run this process does not hold is not an error: it was released already, or it was
// held by an agent process that has since exited, and its memory went with that process.
func (f *Fault) Revert(_ context.Context, raw fault.Undo) error {
	u, _, err := decodeUndo(raw)
	if err != nil {
		return err
	}
	m := held.take(u.Run)
	if m == nil {
		f.env.Log.Info("memory: nothing to release: already released, or held by a process that has exited",
			"run", u.Run, "pid", u.Pid)
		return nil
	}
	if err := m.release(); err != nil {
		return fmt.Errorf("memory: release %s: %w", fault.Size(u.Bytes), err)
	}
	f.env.Log.Info("memory released", "run", u.Run, "bytes", u.Bytes)
	return nil
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }
