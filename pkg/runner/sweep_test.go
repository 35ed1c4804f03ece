package runner

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/journal"
	"github.com/chaoscron/chaoscron/pkg/fault"
)

// marker is a sweepable fault whose marks live in memory, standing in for the network
// fault's qdiscs, so that a test can hold a sweep half-way and start a run under it.
type marker struct{}

var marks = struct {
	sync.Mutex
	set      map[string]bool
	started  chan struct{} // a Sweep has taken its keep list and waits for go
	proceed  chan struct{}
	injected chan string
}{set: map[string]bool{}}

func (marker) Plan(_ context.Context, run string) (fault.Undo, error) {
	return json.Marshal(map[string]string{"mark": run})
}

func (marker) Inject(_ context.Context, plan fault.Undo) (fault.Undo, error) {
	var u struct{ Mark string }
	if err := json.Unmarshal(plan, &u); err != nil {
		return nil, err
	}
	marks.Lock()
	marks.set[u.Mark] = true
	marks.Unlock()
	if marks.injected != nil {
		marks.injected <- u.Mark
	}
	return plan, nil
}

func (marker) Revert(_ context.Context, undo fault.Undo) error {
	var u struct{ Mark string }
	if err := json.Unmarshal(undo, &u); err != nil {
		return err
	}
	marks.Lock()
	delete(marks.set, u.Mark)
	marks.Unlock()
	return nil
}

func (marker) Sweep(_ context.Context, keep []fault.Undo) ([]string, error) {
	owned := map[string]bool{}
	for _, k := range keep {
		var u struct{ Mark string }
		if json.Unmarshal(k, &u) == nil {
			owned[u.Mark] = true
		}
	}
	if marks.started != nil {
		marks.started <- struct{}{}
		<-marks.proceed
	}
	marks.Lock()
	defer marks.Unlock()
	var swept []string
	for m := range marks.set {
		if !owned[m] {
			delete(marks.set, m)
			swept = append(swept, m)
		}
	}
	return swept, nil
}

func init() {
	fault.Register("test-marker", func(fault.Params, fault.Env) (fault.Fault, error) { return marker{}, nil })
}

// TestSweepWhileRunsStart: a sweep on a live agent (an operator's recover) must not take a
// run that starts meanwhile for a leftover. The run's intent comes after the sweep's keep
// list; its fault must not be in place before the sweep has looked.
func TestSweepWhileRunsStart(t *testing.T) {
	marks.started, marks.proceed, marks.injected = make(chan struct{}), make(chan struct{}), make(chan string, 1)
	defer func() { marks.started, marks.proceed, marks.injected = nil, nil, nil }()
	f := newFixture(t, `
agent: {listen: "off"}
experiments:
  - {name: m, schedule: "@every 1h", duration: 1h, fault: {type: test-marker}}
`)
	type result struct {
		rep Report
		err error
	}
	recovered := make(chan result, 1)
	go func() {
		rep, err := f.r.Recover(context.Background())
		recovered <- result{rep, err}
	}()
	<-marks.started // the sweep has its keep list: no run yet

	fired := make(chan error, 1)
	var id uint64
	go func() {
		var err error
		id, err = f.r.Fire(context.Background(), "m", TriggerFire, time.Time{})
		fired <- err
	}()
	// Give the run every chance to get its fault in place while the sweep waits: the
	// runner must hold it back. (A slow machine can only make this test pass wrongly.)
	select {
	case m := <-marks.injected:
		t.Logf("run injected %s during the sweep", m)
	case <-time.After(500 * time.Millisecond):
	}
	close(marks.proceed)
	res := <-recovered
	if err := <-fired; err != nil {
		t.Fatal(err)
	}
	if res.err != nil || len(res.rep.Swept) != 0 {
		t.Fatalf("Recover while a run started: swept %v (err %v); want nothing, the run is live", res.rep.Swept, res.err)
	}
	marks.Lock()
	n := len(marks.set)
	marks.Unlock()
	if rec := f.get(id); n != 1 || rec.Status != journal.Active {
		t.Fatalf("after the sweep: %d marks, run %d %s; want the run's mark in place, active", n, id, rec.Status)
	}
}
