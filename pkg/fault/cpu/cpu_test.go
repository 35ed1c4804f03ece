package cpu

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

func TestRegistered(t *testing.T) {
	if !fault.Known("cpu") {
		t.Fatal(`fault type "cpu" is not registered`)
	}
}

func TestNewValidation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		params fault.Params
		key    string // "" = valid
		msg    string // substring of the message
	}{
		{"defaults", fault.Params{}, "", ""},
		{"explicit", fault.Params{"workers": 2, "load": "60%"}, "", ""},
		{"fractional load", fault.Params{"load": 0.5}, "", ""},
		{"max workers", fault.Params{"workers": 1024}, "", ""},
		{"workers zero", fault.Params{"workers": 0}, "workers", "below 1"},
		{"workers negative", fault.Params{"workers": -1}, "workers", "below 1"},
		{"workers too many", fault.Params{"workers": 1025}, "workers", "above the limit"},
		{"workers word", fault.Params{"workers": "two"}, "workers", "whole number"},
		{"workers fraction", fault.Params{"workers": 1.5}, "workers", "whole number"},
		{"load zero", fault.Params{"load": 0}, "load", "above 0%"},
		{"load zero string", fault.Params{"load": "0%"}, "load", "above 0%"},
		{"load above 100", fault.Params{"load": 150}, "load", "150"},
		{"load negative", fault.Params{"load": "-5%"}, "load", "below 0%"},
		{"load word", fault.Params{"load": "abc"}, "load", "not a percentage"},
		{"unknown", fault.Params{"cores": 2}, "cores", "unknown key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := fault.New("cpu", tc.params, fault.Env{})
			if tc.key == "" {
				if err != nil || f == nil {
					t.Fatalf("New(%v) = %v, %v; want a fault", tc.params, f, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("New(%v) succeeded; want an error on %q", tc.params, tc.key)
			}
			fes := fault.FieldErrors(err)
			if len(fes) != 1 || fes[0].Key != tc.key || !strings.Contains(fes[0].Msg, tc.msg) {
				t.Fatalf("New(%v) error = %q; want one error on %q containing %q", tc.params, err, tc.key, tc.msg)
			}
		})
	}
}

func TestNewReportsEveryProblem(t *testing.T) {
	_, err := fault.New("cpu", fault.Params{"workers": 0, "load": 150}, fault.Env{})
	fes := fault.FieldErrors(err)
	if len(fes) != 2 {
		t.Fatalf("got %d errors (%v); want one for workers and one for load", len(fes), err)
	}
}

func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		name   string
		params fault.Params
		want   string
	}{
		{"explicit", fault.Params{"workers": 2, "load": 60}, `{"run":"r1","workers":2,"load":60}`},
		{"defaults", fault.Params{}, `{"run":"r1","workers":` + itoa(runtime.NumCPU()) + `,"load":100}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := mustNew(t, tc.params)
			got, err := f.Plan(t.Context(), "r1")
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("Plan = %s; want %s", got, tc.want)
			}
		})
	}
}

// TestBurnShare runs real burners and measures, from the kernel's per-thread accounting, how
// much CPU this process got meanwhile (run) and how long its threads waited for a CPU while
// they wanted one (wait). Other tests share the two cores, so a burner may get less than its
// load through no fault of its own; what it must do is never take more than its load, and
// ask for at least that much: run ≤ load+tol and run+wait ≥ load−tol. On an idle host wait is
// about 0 and this is run = load±tol. The figures are in the log (go test -v).
func TestBurnShare(t *testing.T) {
	for _, tc := range []struct {
		name    string
		workers int
		load    float64
		want    float64 // CPUs' worth of busy time
		tol     float64
	}{
		{"1x50%", 1, 50, 0.50, 0.10},
		{"1x100%", 1, 100, 1.00, 0.10},
		{"2x50%", 2, 50, 1.00, 0.20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := mustNew(t, fault.Params{"workers": tc.workers, "load": tc.load})
			undo := inject(t, f, "share")
			run, wait := schedUsage(t, 1500*time.Millisecond)
			revert(t, f, undo)
			t.Logf("%d worker(s) at %v%%: %.3f CPUs busy (%.1f%% per worker), %.3f CPUs' worth of waiting for a CPU",
				tc.workers, tc.load, run, 100*run/float64(tc.workers), wait)
			if run > tc.want+tc.tol {
				t.Fatalf("busy = %.3f CPUs; want at most %.2f+%.2f", run, tc.want, tc.tol)
			}
			if run+wait < tc.want-tc.tol {
				t.Fatalf("busy = %.3f CPUs and waiting = %.3f; want together at least %.2f−%.2f", run, wait, tc.want, tc.tol)
			}
		})
	}
}

func TestRevertStopsBurners(t *testing.T) {
	goroutines := runtime.NumGoroutine()
	f := mustNew(t, fault.Params{"workers": 2, "load": 100})
	undo := inject(t, f, "stop")
	if n := runtime.NumGoroutine(); n < goroutines+2 {
		t.Fatalf("%d goroutines after Inject; want at least %d", n, goroutines+2)
	}
	time.Sleep(100 * time.Millisecond)
	revert(t, f, undo)

	if n := runtime.NumGoroutine(); n > goroutines {
		// The supervisor goroutine forgets the run just after the workers return.
		waitFor(t, func() bool { return runtime.NumGoroutine() <= goroutines }, "goroutine count back to %d", goroutines)
	}
	if got := busy(t, 300*time.Millisecond); got > 0.05 {
		t.Fatalf("%.3f CPUs busy after Revert; want ~0", got)
	}
	// Idempotent.
	revert(t, f, undo)
}

func TestRevertWithoutInject(t *testing.T) {
	f := mustNew(t, fault.Params{"workers": 1})
	plan, err := f.Plan(t.Context(), "never")
	if err != nil {
		t.Fatal(err)
	}
	// Start-up recovery: a fresh Fault in a fresh process sees only the undo.
	fresh := mustNew(t, fault.Params{"workers": 1})
	for _, u := range []fault.Undo{plan, nil} {
		if err := fresh.Revert(t.Context(), u); err != nil {
			t.Fatalf("Revert(%s) = %v; want nil", u, err)
		}
	}
	if err := fresh.Revert(t.Context(), fault.Undo(`{"run":`)); err == nil {
		t.Fatal("Revert of malformed undo succeeded; want an error")
	}
}

func TestConcurrentRunsAreSeparate(t *testing.T) {
	f := mustNew(t, fault.Params{"workers": 1, "load": 10})
	a := inject(t, f, "a")
	b := inject(t, f, "b")
	ba := f.lookup("a")
	bb := f.lookup("b")
	revert(t, f, a)
	select {
	case <-ba.done:
	default:
		t.Fatal("run a still burning after its Revert")
	}
	select {
	case <-bb.done:
		t.Fatal("Revert of run a stopped run b")
	case <-time.After(50 * time.Millisecond):
	}
	revert(t, f, b)
	if f.lookup("a") != nil || f.lookup("b") != nil {
		t.Fatal("runs still recorded after their Revert")
	}
	// The run id is free again at once.
	revert(t, f, inject(t, f, "a"))
}

func TestInjectSameRunTwice(t *testing.T) {
	f := mustNew(t, fault.Params{"workers": 1, "load": 10})
	plan, _ := f.Plan(t.Context(), "dup")
	undo := inject(t, f, "dup")
	defer revert(t, f, undo)
	if _, err := f.Inject(t.Context(), plan); err == nil {
		t.Fatal("second Inject of the same run succeeded; want an error")
	}
}

func TestInjectRejectsBadPlan(t *testing.T) {
	f := mustNew(t, fault.Params{})
	for _, plan := range []string{`{"run":"x","workers":100000,"load":50}`, `{"run":"x","workers":1,"load":0}`, `[]`} {
		if _, err := f.Inject(t.Context(), fault.Undo(plan)); err == nil {
			t.Errorf("Inject(%s) succeeded; want an error", plan)
		}
	}
}

func TestContextCancelStopsBurners(t *testing.T) {
	f := mustNew(t, fault.Params{"workers": 1, "load": 50})
	ctx, cancel := context.WithCancel(t.Context())
	plan, _ := f.Plan(ctx, "ctx")
	undo, err := f.Inject(ctx, plan)
	if err != nil {
		t.Fatal(err)
	}
	b := f.lookup("ctx")
	cancel()
	select {
	case <-b.done:
	case <-time.After(2 * time.Second):
		t.Fatal("burners still running 2s after ctx was cancelled")
	}
	waitFor(t, func() bool { return f.lookup("ctx") == nil }, "run forgotten after ctx cancel")
	revert(t, f, undo)

	if _, err := f.Inject(ctx, plan); err == nil {
		t.Fatal("Inject with a cancelled ctx succeeded")
	}
}

func TestRevertHonoursContext(t *testing.T) {
	f := mustNew(t, fault.Params{"workers": 1, "load": 10})
	undo := inject(t, f, "late")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	// Either it saw the workers finish already or it reports the cancelled wait; both are
	// fine, but it must not hang, and a later Revert must succeed.
	_ = f.Revert(ctx, undo)
	revert(t, f, undo)
}

// A reloaded config or a cleanup retry reverts through a Fault value other than the one that
// injected: the burn must stop all the same.
func TestRevertThroughAnotherFault(t *testing.T) {
	a := mustNew(t, fault.Params{"workers": 1, "load": 10})
	b := mustNew(t, fault.Params{"workers": 1, "load": 10})
	undo := inject(t, a, "other-value")
	if err := b.Revert(t.Context(), undo); err != nil {
		t.Fatal(err)
	}
	if a.lookup("other-value") != nil {
		t.Fatal("the burn is still registered after a Revert through another Fault")
	}
}

// --- helpers

func (f *Fault) lookup(run string) *burn {
	live.mu.Lock()
	defer live.mu.Unlock()
	return live.runs[run]
}

func mustNew(t *testing.T, p fault.Params) *Fault {
	t.Helper()
	ff, err := New(p, fault.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return ff.(*Fault)
}

func inject(t *testing.T, f *Fault, run string) fault.Undo {
	t.Helper()
	plan, err := f.Plan(t.Context(), run)
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.Inject(context.WithoutCancel(t.Context()), plan)
	if err != nil {
		t.Fatal(err)
	}
	// Never leave a burner behind, even when the test fails half-way.
	t.Cleanup(func() { _ = f.Revert(context.Background(), got) })
	var u undo
	if err := json.Unmarshal(got, &u); err != nil || u.Run != run {
		t.Fatalf("undo %s does not name run %q", got, run)
	}
	return got
}

func revert(t *testing.T, f *Fault, undo fault.Undo) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.Revert(ctx, undo); err != nil {
		t.Fatalf("Revert: %v", err)
	}
}

// processCPU is the CPU time (user+system) of every thread of this process.
func processCPU(t testing.TB) time.Duration {
	t.Helper()
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// busy measures how many CPUs' worth of time this process uses over d.
func busy(t testing.TB, d time.Duration) float64 {
	t.Helper()
	c0, w0 := processCPU(t), time.Now()
	time.Sleep(d)
	c1, w1 := processCPU(t), time.Now()
	return float64(c1-c0) / float64(w1.Sub(w0))
}

// schedUsage measures over d how many CPUs' worth of time this process's threads ran, and
// how many they spent runnable but waiting for a CPU (fields 1 and 2 of
// /proc/self/task/*/schedstat, in nanoseconds).
func schedUsage(t testing.TB, d time.Duration) (run, wait float64) {
	t.Helper()
	r0, q0 := schedstat(t)
	w0 := time.Now()
	time.Sleep(d)
	r1, q1 := schedstat(t)
	wall := float64(time.Since(w0))
	for tid, r := range r1 {
		run += float64(r - r0[tid]) // a thread new since the start counts from 0
		wait += float64(q1[tid] - q0[tid])
	}
	return run / wall, wait / wall
}

func schedstat(t testing.TB) (run, wait map[string]int64) {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	run, wait = map[string]int64{}, map[string]int64{}
	for _, task := range tasks {
		data, err := os.ReadFile("/proc/self/task/" + task.Name() + "/schedstat")
		if err != nil {
			continue // the thread has just exited
		}
		var r, q, slices int64
		if _, err := fmt.Sscan(string(data), &r, &q, &slices); err != nil {
			t.Fatalf("schedstat of thread %s: %q: %v", task.Name(), data, err)
		}
		run[task.Name()], wait[task.Name()] = r, q
	}
	return run, wait
}

func waitFor(t *testing.T, cond func() bool, what string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for "+what, args...)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
