package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chaoscron/chaoscron/journal"
	"github.com/chaoscron/chaoscron/pkg/config"
	"github.com/chaoscron/chaoscron/pkg/fault"
	_ "github.com/chaoscron/chaoscron/pkg/fault/cpu"
	_ "github.com/chaoscron/chaoscron/pkg/fault/disk"
	"github.com/chaoscron/chaoscron/pkg/metrics"
)

// fixture is a runner over a real journal and the real disk fault, filling a temp dir.
type fixture struct {
	t    *testing.T
	dir  string // the disk fault's target
	jp   string
	j    *journal.Journal
	m    *metrics.Set
	r    *Runner
	inst string
}

func newFixture(t *testing.T, yaml string) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir(), inst: "test-" + t.Name()}
	f.jp = filepath.Join(t.TempDir(), "journal.db")
	f.open(yaml)
	return f
}

func (f *fixture) open(yaml string) {
	f.t.Helper()
	yaml = strings.ReplaceAll(yaml, "DIR", f.dir)
	cfg, err := config.Parse([]byte(yaml), "test.yaml", map[string]any{"journal.path": f.jp})
	if err != nil {
		f.t.Fatalf("config: %v", err)
	}
	j, err := journal.Open(f.jp, journal.Options{})
	if err != nil {
		f.t.Fatal(err)
	}
	f.j = j
	f.m = metrics.New("test")
	r, err := New(Options{Config: cfg, Journal: j, Metrics: f.m, Env: fault.Env{Self: os.Getpid()},
		Agent: journal.Agent{Instance: f.inst, PID: os.Getpid()}})
	if err != nil {
		f.t.Fatal(err)
	}
	f.r = r
	f.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = r.Shutdown(ctx)
		_ = j.Close()
	})
}

// fills lists the disk fault's files in the target dir.
func (f *fixture) fills() []string {
	f.t.Helper()
	m, err := filepath.Glob(filepath.Join(f.dir, ".chaoscron-fill-*"))
	if err != nil {
		f.t.Fatal(err)
	}
	return m
}

func (f *fixture) get(id uint64) journal.Record {
	f.t.Helper()
	rec, err := f.j.Get(id)
	if err != nil {
		f.t.Fatal(err)
	}
	return rec
}

const diskYAML = `
agent: {max_active: 2, listen: "off"}
experiments:
  - name: fill
    schedule: "@every 1h"
    duration: DURATION
    fault: {type: disk, path: DIR, size: 1MiB, reserve: 1MiB}
`

func disk(d string) string { return strings.ReplaceAll(diskYAML, "DURATION", d) }

func TestLifecycle(t *testing.T) {
	f := newFixture(t, disk("400ms"))
	id, err := f.r.Fire(t.Context(), "fill", TriggerFire, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.fills()); n != 1 {
		t.Fatalf("after Fire: %d fill files, want 1", n)
	}
	rec := f.get(id)
	if rec.Status != journal.Active || rec.Cleanup != journal.CleanupPending || rec.AppliedAt.IsZero() || len(rec.Undo) == 0 {
		t.Fatalf("while held: status %s cleanup %s applied %v undo %s", rec.Status, rec.Cleanup, rec.AppliedAt, rec.Undo)
	}
	if v := testutil.ToFloat64(f.m.Active.WithLabelValues("disk")); v != 1 {
		t.Fatalf("chaos_injection_active{disk} = %v while held, want 1", v)
	}
	if v := testutil.ToFloat64(f.m.OpenRuns); v != 1 {
		t.Fatalf("chaos_journal_open_runs = %v while held, want 1", v)
	}
	if v, want := testutil.ToFloat64(f.m.PlannedEnd.WithLabelValues("disk")), float64(rec.PlannedEnd.UnixNano())/1e9; v != want {
		t.Fatalf("chaos_injection_planned_end_timestamp_seconds{disk} = %v while held, want %v", v, want)
	}
	f.r.Wait()
	if v := testutil.ToFloat64(f.m.PlannedEnd.WithLabelValues("disk")); v != 0 {
		t.Fatalf("chaos_injection_planned_end_timestamp_seconds{disk} = %v after, want 0", v)
	}
	if n := len(f.fills()); n != 0 {
		t.Fatalf("after the run: %d fill files left behind", n)
	}
	rec = f.get(id)
	if rec.Status != journal.Succeeded || rec.Cleanup != journal.CleanupDone {
		t.Fatalf("after: status %s cleanup %s, want succeeded done (err %q)", rec.Status, rec.Cleanup, rec.Error)
	}
	if held := rec.EndedAt.Sub(rec.AppliedAt); held < 350*time.Millisecond {
		t.Fatalf("held %v, want about 400ms", held)
	}
	if open, _ := f.j.OpenRuns(); len(open) != 0 {
		t.Fatalf("%d open runs after a clean run", len(open))
	}
	if v := testutil.ToFloat64(f.m.Injections.WithLabelValues("disk", metrics.Success)); v != 1 {
		t.Fatalf("chaos_injections_total{disk,success} = %v, want 1", v)
	}
	if v := testutil.ToFloat64(f.m.Active.WithLabelValues("disk")); v != 0 {
		t.Fatalf("chaos_injection_active{disk} = %v after, want 0", v)
	}
	if v := testutil.ToFloat64(f.m.OpenRuns); v != 0 {
		t.Fatalf("chaos_journal_open_runs = %v after, want 0", v)
	}
}

// probe is a fault that checks the write-ahead rule from the inside: when Inject runs, the
// run's intent with its plan must already be committed in the journal.
type probe struct {
	j    **journal.Journal
	seen chan journal.Record
}

func (p *probe) Plan(_ context.Context, run string) (fault.Undo, error) {
	return fault.Undo(fmt.Sprintf(`{"run":%q}`, run)), nil
}

func (p *probe) Inject(_ context.Context, plan fault.Undo) (fault.Undo, error) {
	open, err := (*p.j).OpenRuns()
	if err != nil || len(open) != 1 {
		return nil, fmt.Errorf("intent not in the journal at inject: %d open, %v", len(open), err)
	}
	p.seen <- open[0]
	return plan, nil
}

func (p *probe) Revert(context.Context, fault.Undo) error { return nil }

var probeJournal *journal.Journal
var probeSeen = make(chan journal.Record, 16)

func init() {
	fault.Register("test-probe", func(fault.Params, fault.Env) (fault.Fault, error) {
		return &probe{j: &probeJournal, seen: probeSeen}, nil
	})
}

func TestIntentBeforeInject(t *testing.T) {
	f := newFixture(t, `
agent: {listen: "off"}
experiments:
  - {name: p, schedule: "@every 1h", duration: 10ms, fault: {type: test-probe}}
`)
	probeJournal = f.j
	id, err := f.r.Fire(t.Context(), "p", TriggerFire, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	rec := <-probeSeen
	if rec.ID != id || rec.Status != journal.Pending || rec.Cleanup != journal.CleanupPending || !strings.Contains(string(rec.Undo), `"run"`) {
		t.Fatalf("at inject the journal held %+v; want run %d pending with its plan", rec, id)
	}
	f.r.Wait()
}

func TestNoJournalNoChaos(t *testing.T) {
	f := newFixture(t, disk("1s"))
	// A journal that cannot be written: closed under the runner's feet.
	if err := f.j.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := f.r.Fire(t.Context(), "fill", TriggerFire, time.Time{})
	if err == nil || !strings.Contains(err.Error(), "nothing injected") {
		t.Fatalf("Fire with a dead journal: err = %v, want a journal error", err)
	}
	if n := len(f.fills()); n != 0 {
		t.Fatalf("a fault was injected without a journal: %d files", n)
	}
	if v := testutil.ToFloat64(f.m.JournalErrs); v != 1 {
		t.Fatalf("chaos_journal_write_errors_total = %v, want 1", v)
	}
}

// TestMain lets the test binary play a crashing agent (see crashChild).
func TestMain(m *testing.M) {
	if os.Getenv("RUNNER_TEST_CHILD") == "crash" {
		crashChild()
		return
	}
	os.Exit(m.Run())
}

// crashChild fires a long disk fill, says so, and waits to be SIGKILLed.
func crashChild() {
	dir, jp := os.Getenv("RUNNER_TEST_DIR"), os.Getenv("RUNNER_TEST_JOURNAL")
	cfg, err := config.Parse([]byte(strings.ReplaceAll(disk("1h"), "DIR", dir)), "child.yaml", map[string]any{"journal.path": jp})
	if err != nil {
		panic(err)
	}
	j, err := journal.Open(jp, journal.Options{})
	if err != nil {
		panic(err)
	}
	r, err := New(Options{Config: cfg, Journal: j, Env: fault.Env{Self: os.Getpid()}, Agent: journal.Agent{Instance: "child", PID: os.Getpid()}})
	if err != nil {
		panic(err)
	}
	id, err := r.Fire(context.Background(), "fill", TriggerFire, time.Time{})
	if err != nil {
		panic(err)
	}
	fmt.Println("active", id)
	select {}
}

func TestRecoverAfterCrash(t *testing.T) {
	dir, jp := t.TempDir(), filepath.Join(t.TempDir(), "journal.db")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "RUNNER_TEST_CHILD=crash", "RUNNER_TEST_DIR="+dir, "RUNNER_TEST_JOURNAL="+jp)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var id uint64
	if _, err := fmt.Fscanf(out, "active %d\n", &id); err != nil {
		_ = cmd.Process.Kill()
		t.Fatalf("child did not report an active run: %v", err)
	}
	// The crash: SIGKILL with the fault in place. Nothing in the child gets to clean up.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	fills, _ := filepath.Glob(filepath.Join(dir, ".chaoscron-fill-*"))
	if len(fills) != 1 {
		t.Fatalf("%d fill files after the crash, want the dangling one", len(fills))
	}

	f := &fixture{t: t, dir: dir, jp: jp, inst: "restarted"}
	f.open(disk("1h"))
	rep, err := f.r.Recover(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Open != 1 || rep.Recovered != 1 {
		t.Fatalf("report %+v, want 1 open, 1 recovered", rep)
	}
	if n := len(f.fills()); n != 0 {
		t.Fatalf("recovery left %d fill files", n)
	}
	rec := f.get(id)
	if rec.Status != journal.Aborted || rec.Cleanup != journal.CleanupRecovered || rec.Agent.Instance != "child" {
		t.Fatalf("recovered record: status %s cleanup %s agent %s", rec.Status, rec.Cleanup, rec.Agent.Instance)
	}
	if v := testutil.ToFloat64(f.m.Recoveries.WithLabelValues("disk", "ok")); v != 1 {
		t.Fatalf("chaos_recoveries_total{disk,ok} = %v, want 1", v)
	}
	// Idempotent: a second recovery finds nothing.
	if rep, err := f.r.Recover(t.Context()); err != nil || rep.Open != 0 {
		t.Fatalf("second Recover: %+v, %v", rep, err)
	}
}

func TestHalt(t *testing.T) {
	f := newFixture(t, disk("1h"))
	id, err := f.r.Fire(t.Context(), "fill", TriggerFire, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	n, err := f.r.Halt("test")
	if err != nil || n != 1 {
		t.Fatalf("Halt = %d, %v; want 1 run ended", n, err)
	}
	f.r.Wait()
	if took := time.Since(start); took > time.Second {
		t.Fatalf("halt took %v to revert", took)
	}
	if len(f.fills()) != 0 {
		t.Fatal("halt left the fill file behind")
	}
	if rec := f.get(id); rec.Status != journal.Aborted || rec.Cleanup != journal.CleanupDone || !strings.Contains(rec.Reason, "halted") {
		t.Fatalf("halted run: %s %s %q", rec.Status, rec.Cleanup, rec.Reason)
	}
	if _, err := f.r.Fire(t.Context(), "fill", TriggerFire, time.Time{}); !IsSkip(err) {
		t.Fatalf("Fire while halted: %v, want a skip", err)
	}
	// Persisted: a restarted agent is still halted.
	_ = f.r.Shutdown(t.Context())
	_ = f.j.Close()
	f.open(disk("1h"))
	if !f.r.Halted() {
		t.Fatal("halt did not survive a restart")
	}
	if err := f.r.Resume(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.r.Fire(t.Context(), "fill", TriggerFire, time.Time{}); err != nil {
		t.Fatalf("Fire after resume: %v", err)
	}
}

func TestConcurrency(t *testing.T) {
	f := newFixture(t, `
agent: {max_active: 2, listen: "off"}
experiments:
  - {name: a, schedule: "@every 1h", duration: 1h, fault: {type: disk, path: DIR, size: 1KiB, reserve: 1MiB}}
  - {name: b, schedule: "@every 1h", duration: 1h, concurrency: allow, fault: {type: disk, path: DIR, size: 1KiB, reserve: 1MiB}}
`)
	ctx := t.Context()
	if _, err := f.r.Fire(ctx, "a", TriggerFire, time.Time{}); err != nil {
		t.Fatal(err)
	}
	var s *SkipError
	if _, err := f.r.Fire(ctx, "a", TriggerFire, time.Time{}); !errors.As(err, &s) || s.Reason != "concurrency" {
		t.Fatalf("second a: %v, want a concurrency skip", err)
	}
	if _, err := f.r.Fire(ctx, "b", TriggerFire, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.r.Fire(ctx, "b", TriggerFire, time.Time{}); !errors.As(err, &s) || s.Reason != "max_active" {
		t.Fatalf("third fault: %v, want a max_active skip", err)
	}
	if n := len(f.fills()); n != 2 {
		t.Fatalf("%d fill files, want 2", n)
	}
	if err := f.r.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(f.fills()); n != 0 {
		t.Fatalf("shutdown left %d fill files", n)
	}
	for _, rec := range mustList(t, f.j) {
		if rec.Status != journal.Aborted || rec.Cleanup != journal.CleanupDone || rec.Reason != "shutdown" {
			t.Fatalf("after shutdown: run %d %s %s %q", rec.ID, rec.Status, rec.Cleanup, rec.Reason)
		}
	}
}

func TestDryRun(t *testing.T) {
	f := newFixture(t, strings.Replace(disk("1h"), "agent: {", "agent: {dry_run: true, ", 1))
	id, err := f.r.Fire(t.Context(), "fill", TriggerFire, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.fills()) != 0 {
		t.Fatal("dry run changed the system")
	}
	rec := f.get(id)
	if !rec.DryRun || rec.Cleanup != journal.CleanupNone || len(rec.Undo) == 0 || !strings.HasPrefix(rec.Reason, "dry run") {
		t.Fatalf("dry-run record: %+v", rec)
	}
	if v := testutil.ToFloat64(f.m.Injections.WithLabelValues("disk", metrics.Skipped)); v != 1 {
		t.Fatalf("chaos_injections_total{disk,skipped} = %v, want 1", v)
	}
}

func TestProbabilityReproducible(t *testing.T) {
	yaml := `
agent: {seed: 42, listen: "off"}
journal: {record_skips: true}
experiments:
  - {name: p, schedule: "@every 1h", probability: 0.3, duration: 1ms, concurrency: allow, fault: {type: disk, path: DIR, size: 1KiB, reserve: 1MiB}}
`
	pattern := func() string {
		f := newFixture(t, yaml)
		var b strings.Builder
		for range 40 {
			_, err := f.r.Fire(t.Context(), "p", TriggerSchedule, time.Time{})
			if err == nil {
				b.WriteByte('x')
			} else if IsSkip(err) {
				b.WriteByte('.')
			} else {
				t.Fatal(err)
			}
			f.r.Wait()
		}
		return b.String()
	}
	a, b := pattern(), pattern()
	if a != b {
		t.Fatalf("same seed, different fire patterns:\n%s\n%s", a, b)
	}
	if n := strings.Count(a, "x"); n == 0 || n == 40 {
		t.Fatalf("pattern %s: p=0.3 should fire some, not all", a)
	}
}

func mustList(t *testing.T, j *journal.Journal) []journal.Record {
	t.Helper()
	recs, err := j.List(journal.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// Scheduled fires take the scheduler's inline path (decide on its loop, the rest in a
// goroutine): runs and recorded skips both reach the journal, with the tick they fired for,
// and Shutdown waits for their writes.
func TestScheduledFires(t *testing.T) {
	f := newFixture(t, `
agent: {listen: "off"}
journal: {record_skips: true}
experiments:
  - {name: fires, schedule: "* * * * * *", duration: 1ms, fault: {type: disk, path: DIR, size: 1KiB, reserve: 1MiB}}
  - {name: quiet, schedule: "* * * * * *", duration: 1ms, fault: {type: disk, path: DIR, size: 1KiB, reserve: 1MiB}}
`)
	if err := f.r.SetPaused("quiet", true); err != nil {
		t.Fatal(err)
	}
	f.r.Start(t.Context())
	time.Sleep(2200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := f.r.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, rec := range mustList(t, f.j) {
		got[rec.Experiment+" "+string(rec.Status)]++
		if rec.Trigger != TriggerSchedule || !rec.ScheduledAt.Equal(rec.ScheduledAt.Truncate(time.Second)) ||
			rec.StartedAt.Before(rec.ScheduledAt) {
			t.Errorf("run %d: trigger %s, scheduled %s, started %s; want a schedule fire for a whole second, started after it",
				rec.ID, rec.Trigger, rec.ScheduledAt, rec.StartedAt)
		}
		switch rec.Experiment {
		case "fires":
			if rec.Status != journal.Succeeded || rec.Cleanup != journal.CleanupDone {
				t.Errorf("run %d of fires: %s, cleanup %s", rec.ID, rec.Status, rec.Cleanup)
			}
		case "quiet":
			if rec.Status != journal.Skipped || rec.Reason != "the experiment is paused" {
				t.Errorf("run %d of quiet: %s (%s)", rec.ID, rec.Status, rec.Reason)
			}
		}
	}
	if got["fires succeeded"] < 2 || got["quiet skipped"] < 2 {
		t.Fatalf("runs by experiment and status after 2.2 s of ticks: %v", got)
	}
	if len(f.fills()) != 0 {
		t.Fatalf("fill files left: %v", f.fills())
	}
}
