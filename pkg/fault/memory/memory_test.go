package memory

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

const mib = 1 << 20

func newFault(t testing.TB, p fault.Params, env fault.Env) fault.Fault {
	t.Helper()
	f, err := fault.New("memory", p, env)
	if err != nil {
		t.Fatalf("New(%v): %v", p, err)
	}
	return f
}

func TestNewValidation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		params fault.Params
		keys   []string // the FieldError keys expected, in order; nil for no error
	}{
		{"size", fault.Params{"size": "256MiB"}, nil},
		{"size as number", fault.Params{"size": 4096}, nil},
		{"percent", fault.Params{"percent": "25%", "ramp": "10s"}, nil},
		{"no huge pages", fault.Params{"size": "1MiB", "huge_pages": false}, nil},
		{"huge pages from the environment", fault.Params{"size": "1MiB", "huge_pages": "true"}, nil},
		{"huge pages not a bool", fault.Params{"size": "1MiB", "huge_pages": "sometimes"}, []string{"huge_pages"}},
		{"neither", fault.Params{}, []string{"size"}},
		{"ramp alone", fault.Params{"ramp": "10s"}, []string{"size"}},
		{"both", fault.Params{"size": "1GiB", "percent": "10%"}, []string{"percent"}},
		{"zero size", fault.Params{"size": "0"}, []string{"size"}},
		{"zero percent", fault.Params{"percent": "0%"}, []string{"percent"}},
		{"percent above 100", fault.Params{"percent": "120%"}, []string{"percent"}},
		{"bad size", fault.Params{"size": "lots"}, []string{"size"}},
		{"negative ramp", fault.Params{"size": "1MiB", "ramp": "-1s"}, []string{"ramp"}},
		{"unknown key", fault.Params{"size": "1MiB", "sise": "2MiB"}, []string{"sise"}},
		// Every problem at once: a decode error does not hide the others.
		{"two bad params", fault.Params{"size": "lots", "ramp": "soon"}, []string{"ramp", "size"}},
		{"bad param and negative ramp", fault.Params{"size": "1MiB", "huge_pages": "sometimes", "ramp": "-1s"}, []string{"huge_pages", "ramp"}},
		{"bad param and nothing to allocate", fault.Params{"huge_pages": "sometimes"}, []string{"huge_pages", "size"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := fault.New("memory", tc.params, fault.Env{})
			var keys []string
			for _, fe := range fault.FieldErrors(err) {
				keys = append(keys, fe.Key)
			}
			if strings.Join(keys, ",") != strings.Join(tc.keys, ",") {
				t.Fatalf("error keys = %q, want %q (error: %v)", keys, tc.keys, err)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	for p, want := range map[string]string{
		`{"size":"256MiB"}`:                               "allocate 256MiB",
		`{"size":"1GiB","ramp":"30s"}`:                    "allocate 1GiB over 30s",
		`{"percent":"25%","ramp":"1m"}`:                   "allocate 25% of the memory limit over 1m0s",
		`{"percent":12.5}`:                                "allocate 12.5% of the memory limit",
		`{"size":1048576,"ramp":"500ms"}`:                 "allocate 1MiB over 500ms",
		`{"size":"1GiB","huge_pages":true}`:               "allocate 1GiB",
		`{"size":"1GiB","ramp":"30s","huge_pages":false}`: "allocate 1GiB over 30s, without huge pages",
	} {
		var params fault.Params
		if err := json.Unmarshal([]byte(p), &params); err != nil {
			t.Fatal(err)
		}
		if got := newFault(t, params, fault.Env{}).(fault.Describer).Describe(); got != want {
			t.Errorf("Describe(%s) = %q, want %q", p, got, want)
		}
	}
}

// vmRSS is this process's resident memory.
func vmRSS(t testing.TB) int64 {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

func within(got, want int64, share float64) bool {
	d := float64(got - want)
	return d >= -share*float64(want) && d <= share*float64(want)
}

func mustPlan(t testing.TB, f fault.Fault, run string) fault.Undo {
	t.Helper()
	plan, err := f.Plan(context.Background(), run)
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	return plan
}

// revertOnCleanup makes sure a failing test does not keep its memory for the rest of the run.
func revertOnCleanup(t *testing.T, f fault.Fault, undo fault.Undo) {
	t.Cleanup(func() { _ = f.Revert(context.Background(), undo) })
}

// In huge pages (the default) the memory grows 2MiB at a time; the ramp must still be a line.
func TestRampGrowsResidentMemoryAndRevertGivesItBack(t *testing.T) {
	for _, huge := range []bool{true, false} {
		t.Run("huge pages "+strconv.FormatBool(huge), func(t *testing.T) {
			testRamp(t, fault.Params{"size": "128MiB", "ramp": "1s", "huge_pages": huge})
		})
	}
}

func testRamp(t *testing.T, params fault.Params) {
	const size = 128 * mib
	const ramp = time.Second
	f := newFault(t, params, fault.Env{})
	plan := mustPlan(t, f, "ramp")
	before := vmRSS(t)

	start := time.Now()
	undo, err := f.Inject(context.Background(), plan)
	if err != nil {
		t.Fatalf("Inject: %v", err)
	}
	revertOnCleanup(t, f, undo)
	if el := time.Since(start); el > ramp/4 {
		t.Errorf("Inject with a ramp took %v: it should return at once and fill in the background", el)
	}

	// Gradual: a third of the way in, some but far from all of it is there.
	time.Sleep(ramp / 3)
	if grown := vmRSS(t) - before; grown < size/20 || grown > size*3/4 {
		t.Errorf("after %v of a %v ramp resident memory grew by %dMiB, want a part of %dMiB", ramp/3, ramp, grown/mib, size/mib)
	}

	// Complete: the whole size, ±5%, by the end of the ramp. It takes about the ramp on an
	// idle machine (logged); the slack is for a machine that others load heavily, where the
	// page faults slow down several times over.
	var grown int64
	deadline := start.Add(ramp + 5*time.Second)
	for {
		grown = vmRSS(t) - before
		if within(grown, size, 0.05) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("resident memory grew by %.1fMiB in %v (ramp %v)", float64(grown)/mib, time.Since(start).Round(time.Millisecond), ramp)
	if !within(grown, size, 0.05) {
		t.Fatalf("resident memory grew by %.1fMiB, want %dMiB ±5%%", float64(grown)/mib, size/mib)
	}

	if err := f.Revert(context.Background(), undo); err != nil {
		t.Fatalf("Revert: %v", err)
	}
	if after := vmRSS(t); after-before > size/20 {
		t.Fatalf("after Revert resident memory is still %.1fMiB above where it started", float64(after-before)/mib)
	}
}

func TestInjectWithoutRampReturnsWhenResident(t *testing.T) {
	const size = 64 * mib
	f := newFault(t, fault.Params{"size": "64MiB"}, fault.Env{})
	before := vmRSS(t)
	raw, err := f.Inject(context.Background(), mustPlan(t, f, "at-once"))
	if err != nil {
		t.Fatalf("Inject: %v", err)
	}
	revertOnCleanup(t, f, raw)
	if grown := vmRSS(t) - before; !within(grown, size, 0.05) {
		t.Fatalf("right after Inject resident memory grew by %.1fMiB, want %dMiB ±5%%", float64(grown)/mib, size/mib)
	}
	var u undo
	if err := json.Unmarshal(raw, &u); err != nil || u.Run != "at-once" || u.Bytes != size || u.Pid != os.Getpid() {
		t.Fatalf("undo = %s (%v), want run at-once, bytes %d, pid %d", raw, err, size, os.Getpid())
	}
}

func TestConcurrentRunsKeepTheirOwnMemory(t *testing.T) {
	const size = 32 * mib
	f := newFault(t, fault.Params{"size": "32MiB"}, fault.Env{})
	before := vmRSS(t)
	var undos []fault.Undo
	for _, run := range []string{"one", "two"} {
		u, err := f.Inject(context.Background(), mustPlan(t, f, run))
		if err != nil {
			t.Fatalf("Inject %s: %v", run, err)
		}
		revertOnCleanup(t, f, u)
		undos = append(undos, u)
	}
	if grown := vmRSS(t) - before; !within(grown, 2*size, 0.05) {
		t.Fatalf("two runs grew resident memory by %.1fMiB, want %dMiB", float64(grown)/mib, 2*size/mib)
	}
	// A second Inject of the same run must not map a second block it could never free.
	if _, err := f.Inject(context.Background(), undos[0]); err == nil {
		t.Fatal("Inject of a run that already holds memory succeeded")
	}

	if err := f.Revert(context.Background(), undos[0]); err != nil {
		t.Fatal(err)
	}
	if grown := vmRSS(t) - before; !within(grown, size, 0.1) {
		t.Fatalf("after reverting one run resident memory is %.1fMiB above the start, want the other run's %dMiB", float64(grown)/mib, size/mib)
	}
	// The other run's memory is still mapped and intact.
	m := held.take("two")
	if m == nil {
		t.Fatal("run two lost its memory")
	}
	if binary.LittleEndian.Uint64(m.mem[len(m.mem)-8:]) == 0 {
		t.Error("run two's last word is zero: not filled")
	}
	if !held.add("two", m) {
		t.Fatal("could not put run two back")
	}
	if err := f.Revert(context.Background(), undos[1]); err != nil {
		t.Fatal(err)
	}
	if grown := vmRSS(t) - before; grown > size/4 {
		t.Fatalf("after reverting both runs resident memory is %.1fMiB above the start", float64(grown)/mib)
	}
}

func TestRevert(t *testing.T) {
	t.Run("through another Fault value", func(t *testing.T) {
		params := fault.Params{"size": "16MiB"}
		f1 := newFault(t, params, fault.Env{})
		undo, err := f1.Inject(context.Background(), mustPlan(t, f1, "other-value"))
		if err != nil {
			t.Fatal(err)
		}
		f2 := newFault(t, params, fault.Env{})
		if err := f2.Revert(context.Background(), undo); err != nil {
			t.Fatal(err)
		}
		if held.take("other-value") != nil {
			t.Fatal("Revert through a second Fault value left the memory mapped")
		}
	})
	t.Run("twice", func(t *testing.T) {
		f := newFault(t, fault.Params{"size": "1MiB"}, fault.Env{})
		undo, err := f.Inject(context.Background(), mustPlan(t, f, "twice"))
		if err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			if err := f.Revert(context.Background(), undo); err != nil {
				t.Fatalf("Revert %d: %v", i+1, err)
			}
		}
	})
	t.Run("from a crashed agent's journal", func(t *testing.T) {
		// The run was held by another process: its memory died with it. Nothing to do.
		f := newFault(t, fault.Params{"size": "1MiB"}, fault.Env{})
		undo := fault.Undo(`{"run":"left-by-a-crashed-agent","bytes":1048576,"pid":4242}`)
		if err := f.Revert(context.Background(), undo); err != nil {
			t.Fatalf("Revert of another process's run: %v", err)
		}
	})
	t.Run("a ramp in progress", func(t *testing.T) {
		f := newFault(t, fault.Params{"size": "256MiB", "ramp": "1h"}, fault.Env{})
		undo, err := f.Inject(context.Background(), mustPlan(t, f, "mid-ramp"))
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		if err := f.Revert(context.Background(), undo); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("malformed undo", func(t *testing.T) {
		f := newFault(t, fault.Params{"size": "1MiB"}, fault.Env{})
		for _, u := range []string{`nonsense`, `{}`, `{"run":"x"}`, `{"run":"x","bytes":1,"ramp":"soon"}`} {
			if err := f.Revert(context.Background(), fault.Undo(u)); err == nil {
				t.Errorf("Revert(%s) succeeded", u)
			}
		}
	})
}

func TestInjectCancelledReleasesEverything(t *testing.T) {
	f := newFault(t, fault.Params{"size": "512MiB"}, fault.Env{})
	plan := mustPlan(t, f, "cancelled")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	undo, err := f.Inject(ctx, plan)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Inject with a cancelled context: undo %s, error %v; want context.Canceled", undo, err)
	}
	if m := held.take("cancelled"); m != nil {
		_ = m.release()
		t.Fatal("a cancelled Inject left its memory mapped")
	}
}

func TestPlanRefusesMoreThanTheHostHas(t *testing.T) {
	f := newFault(t, fault.Params{"size": "64TiB"}, fault.Env{})
	_, err := f.Plan(context.Background(), "too-much")
	if err == nil || !strings.Contains(err.Error(), "OOM") {
		t.Fatalf("Plan of 64TiB: %v, want a refusal that says why", err)
	}
	t.Log(err)
}
