package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/journal"
	"github.com/chaoscron/chaoscron/pkg/fault"
	_ "github.com/chaoscron/chaoscron/pkg/fault/disk"
)

// Recovery benchmarks: an agent starts on a journal that a dead agent left with open runs,
// each a real disk fill in place, and must revert them all before it schedules anything.
// Timed per iteration: journal.Open (fsync on), New, Recover (revert each fill, record each
// run recovered, fsynced, then sweep). Between iterations, untimed, the same runs are opened
// again with fresh fills.
//
// The journals are built once (fast: without fsync) and kept in
// $TMPDIR/chaoscron-bench-cache between runs, since a million runs take a while to write;
// delete that directory to rebuild them. A journal stays usable after a benchmark: its open
// runs are closed by recovery and reopened by the next iteration's setup.

// BenchmarkRecover: recovery time against the number of open runs, in journals of 10,000 runs.
//
//	go test -run '^$' -bench 'Recover$' -benchtime 5x ./pkg/runner
func BenchmarkRecover(b *testing.B) {
	for _, open := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("open=%d", open), func(b *testing.B) {
			rj := cachedJournal(b, 10_000, open)
			var took []time.Duration
			for range b.N {
				took = append(took, rj.recoverOnce(b))
			}
			b.ReportMetric(ms(median(took)), "p50-ms")
		})
	}
}

// BenchmarkRecoverBigJournal: 100 open runs in a journal of 1,000,000 runs, and the same 100
// open runs alone, in turns within each iteration. The two should take about the same: the
// open-runs index makes recovery O(open runs), not O(journal).
//
//	go test -run '^$' -bench RecoverBigJournal -benchtime 5x ./pkg/runner
func BenchmarkRecoverBigJournal(b *testing.B) {
	big, small := cachedJournal(b, 1_000_000, 100), cachedJournal(b, 100, 100)
	var tb, ts []time.Duration
	for range b.N {
		tb = append(tb, big.recoverOnce(b))
		ts = append(ts, small.recoverOnce(b))
	}
	b.ReportMetric(ms(median(tb)), "p50-ms")
	b.ReportMetric(ms(median(ts)), "small-p50-ms")
	b.ReportMetric(ms(median(tb))/ms(median(ts)), "ratio")
	if fi, err := os.Stat(big.path); err == nil {
		b.ReportMetric(float64(fi.Size())/1e6, "big-MB")
	}
}

// recoverJournal is a cached journal with runs, of which the ones in open are to be left open.
type recoverJournal struct {
	path string
	open []uint64
	dir  string // where this benchmark's fills go
}

// cachedJournal returns the journal of n runs, open of them open (spread evenly), building it
// if the cache does not have it.
func cachedJournal(b *testing.B, n, open int) *recoverJournal {
	b.Helper()
	cache := filepath.Join(os.TempDir(), "chaoscron-bench-cache")
	if err := os.MkdirAll(cache, 0o700); err != nil {
		b.Fatal(err)
	}
	rj := &recoverJournal{path: filepath.Join(cache, fmt.Sprintf("recover-%d-%d.db", n, open)), dir: b.TempDir()}
	every := n / open
	for i := range open {
		rj.open = append(rj.open, uint64(i*every+1))
	}
	if _, err := os.Stat(rj.path); err == nil {
		return rj
	}
	start := time.Now()
	tmp := rj.path + ".building"
	_ = os.Remove(tmp)
	j, err := journal.Open(tmp, journal.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		at := t0.Add(time.Duration(i) * time.Minute)
		rec := journal.Record{
			Experiment: fmt.Sprintf("exp-%d", i%7), Fault: "disk", Params: json.RawMessage(`{"path":"/tmp","size":"4KiB"}`),
			Trigger: TriggerSchedule, ScheduledAt: at, StartedAt: at.Add(time.Second), AppliedAt: at.Add(time.Second),
			PlannedEnd: at.Add(46 * time.Second), EndedAt: at.Add(46 * time.Second),
			Status: journal.Succeeded, Cleanup: journal.CleanupDone,
			Undo:  json.RawMessage(`{"run":"dead-1","file":"/tmp/.chaoscron-fill-dead-1","bytes":4096}`),
			Agent: journal.Agent{Host: "node-1", PID: 4242, Instance: "dead", Version: "bench"},
		}
		if err := j.Begin(&rec); err != nil {
			b.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		b.Fatal(err)
	}
	if err := os.Rename(tmp, rj.path); err != nil {
		b.Fatal(err)
	}
	b.Logf("built %s (%d runs) in %v", rj.path, n, time.Since(start).Round(time.Millisecond))
	return rj
}

// reopen puts a fresh 4 KiB fill in place for each open run and records the run as a dead
// agent's active one, without fsync (it is setup, not timed).
func (rj *recoverJournal) reopen(b *testing.B) {
	b.Helper()
	params := fault.Params{"path": rj.dir, "size": "4KiB", "reserve": "1MiB"}
	f, err := fault.New("disk", params, fault.Env{Self: os.Getpid()})
	if err != nil {
		b.Fatal(err)
	}
	raw, err := json.Marshal(params)
	if err != nil {
		b.Fatal(err)
	}
	j, err := journal.Open(rj.path, journal.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		// Flush what setup wrote without fsync, so that the first fsync of the timed
		// recovery does not pay for it: a journal left by a crash has long been written back.
		if err := j.Close(); err != nil {
			b.Fatal(err)
		}
		f, err := os.Open(rj.path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}()
	for _, id := range rj.open {
		plan, err := f.Plan(context.Background(), fmt.Sprintf("dead-%d", id))
		if err != nil {
			b.Fatal(err)
		}
		undo, err := f.Inject(context.Background(), plan)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := j.Update(id, func(x *journal.Record) error {
			x.Params, x.Undo = raw, json.RawMessage(undo)
			x.Status, x.Cleanup, x.Reason, x.Error, x.EndedAt = journal.Active, journal.CleanupPending, "", "", time.Time{}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// recoverOnce reopens the runs (untimed) and times an agent's start-up recovery of them.
func (rj *recoverJournal) recoverOnce(b *testing.B) time.Duration {
	b.Helper()
	b.StopTimer()
	rj.reopen(b)
	yaml := `agent: {listen: "off"}
` + experiments(1, "fill", "@every 1h", "1m", fmt.Sprintf("{type: disk, path: %q, size: 4KiB, reserve: 1MiB}", rj.dir))
	cfg := []byte(yaml)
	b.StartTimer()

	start := time.Now()
	r, j := benchRunner(b, string(cfg), rj.path, "bench")
	rep, err := r.Recover(context.Background())
	took := time.Since(start)

	b.StopTimer()
	if err != nil || rep.Recovered != len(rj.open) || len(rep.Swept) != 0 {
		b.Fatalf("recovered %d of %d (swept %v): %v", rep.Recovered, len(rj.open), rep.Swept, err)
	}
	if left, _ := filepath.Glob(filepath.Join(rj.dir, ".chaoscron-fill-*")); len(left) != 0 {
		b.Fatalf("%d fills left after recovery", len(left))
	}
	shutdown(b, r, j)
	b.StartTimer()
	return took
}
