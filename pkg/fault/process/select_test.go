package process

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

func TestCountAndPercent(t *testing.T) {
	dir := t.TempDir()
	name := "cc" + unique(t)
	var kids []*exec.Cmd
	for range 6 {
		kids = append(kids, namedSleep(t, dir, name))
	}
	env := agentEnv(t)
	for _, tc := range []struct {
		params fault.Params
		want   int
	}{
		{fault.Params{}, 1}, // count defaults to 1
		{fault.Params{"count": 2}, 2},
		{fault.Params{"count": "4"}, 4},
		{fault.Params{"count": 10}, 6}, // more than match: all of them
		{fault.Params{"count": "all"}, 6},
		{fault.Params{"percent": "50%"}, 3},
		{fault.Params{"percent": "40%"}, 2}, // 2.4 → 2
		{fault.Params{"percent": "1%"}, 1},  // at least one
		{fault.Params{"percent": 100}, 6},
	} {
		t.Run(fmt.Sprint(tc.params), func(t *testing.T) {
			tc.params["name"] = name
			f := newFault(t, tc.params, env)
			pids := targetPids(t, planOurs(t, f, kids...))
			if len(pids) != tc.want || !slices.IsSorted(pids) || len(slices.Compact(slices.Clone(pids))) != len(pids) {
				t.Fatalf("targets %v, want %d distinct pids, sorted", pids, tc.want)
			}
		})
	}
}

func TestSeededChoiceIsReproducible(t *testing.T) {
	dir := t.TempDir()
	name := "cc" + unique(t)
	var kids []*exec.Cmd
	for range 6 {
		kids = append(kids, namedSleep(t, dir, name))
	}
	env := agentEnv(t)
	choice := func(seed uint64) string {
		env.Seed = seed
		f := newFault(t, fault.Params{"name": name, "count": 3}, env)
		return fmt.Sprint(targetPids(t, planOurs(t, f, kids...)))
	}
	seen := map[string]bool{}
	for seed := uint64(1); seed <= 12; seed++ {
		first := choice(seed)
		if again := choice(seed); again != first {
			t.Fatalf("seed %d chose %s, then %s", seed, first, again)
		}
		seen[first] = true
	}
	// 20 ways to choose 3 of 6: twelve seeds that all chose alike would be no choice at all.
	if len(seen) < 3 {
		t.Fatalf("twelve seeds made only %d different choices: %v", len(seen), seen)
	}
}

func TestChooseUnit(t *testing.T) {
	var cands []candidate
	for pid := 100; pid > 90; pid-- { // unsorted on purpose
		cands = append(cands, candidate{pid: pid})
	}
	cfg := &config{count: 4}
	a, b := choose(cands, cfg, 7), choose(cands, cfg, 7)
	if !slices.Equal(a, b) || len(a) != 4 || !slices.IsSortedFunc(a, func(x, y candidate) int { return x.pid - y.pid }) {
		t.Fatalf("choose: %v and %v; want the same 4, sorted", a, b)
	}
	if all := choose(cands, &config{all: true}, 0); len(all) != 10 || all[0].pid != 91 {
		t.Fatalf("choose all: %v", all)
	}
}

func TestNoMatch(t *testing.T) {
	name := "cc-none-" + unique(t)
	for _, tc := range []struct {
		params fault.Params
		errHas string
		skip   bool // the error wraps fault.ErrSkip
	}{
		{fault.Params{"name": name}, "no process matched name=" + name + " among", false},
		{fault.Params{"name": name, "ignore_missing": true}, "no process matched", true},
		{fault.Params{"pidfile": "/nonexistent/" + name + ".pid"}, "does not exist", false},
		{fault.Params{"pidfile": "/nonexistent/" + name + ".pid", "ignore_missing": true}, "does not exist", true},
		{fault.Params{"port": 1, "ignore_missing": true}, "nothing listens on TCP port 1", true},
	} {
		t.Run(fmt.Sprint(tc.params), func(t *testing.T) {
			_, err := newFault(t, tc.params, fault.Env{}).Plan(context.Background(), "r")
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("Plan: %v; want an error containing %q", err, tc.errHas)
			}
			if errors.Is(err, fault.ErrSkip) != tc.skip {
				t.Fatalf("Plan: %v; wraps ErrSkip: %v, want %v", err, errors.Is(err, fault.ErrSkip), tc.skip)
			}
		})
	}
	t.Run("pidfile without a pid", func(t *testing.T) {
		pidfile := filepath.Join(t.TempDir(), "x.pid")
		if err := os.WriteFile(pidfile, []byte("garbage\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := newFault(t, fault.Params{"pidfile": pidfile, "ignore_missing": true}, fault.Env{}).Plan(context.Background(), "r")
		if err == nil || errors.Is(err, fault.ErrSkip) || !strings.Contains(err.Error(), "does not hold a pid") {
			t.Fatalf("Plan: %v; want a real error, not a skip", err)
		}
	})
}

func TestMatchers(t *testing.T) {
	dir := t.TempDir()
	name := "cc" + unique(t)
	target := namedSleep(t, dir, name)
	pidfile := filepath.Join(dir, "target.pid")
	if err := os.WriteFile(pidfile, []byte(strconv.Itoa(target.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sleep := sleepPath(t)
	uid := strconv.Itoa(os.Geteuid())
	env := agentEnv(t)
	for _, tc := range []struct {
		desc    string
		params  fault.Params
		matches bool
	}{
		{"pidfile", fault.Params{"pidfile": pidfile}, true},
		{"pidfile and name", fault.Params{"pidfile": pidfile, "name": name}, true},
		{"pidfile and another name", fault.Params{"pidfile": pidfile, "name": name + "x"}, false},
		{"exe path", fault.Params{"name": name, "exe": sleep}, true},
		{"exe base name", fault.Params{"name": name, "exe": filepath.Base(sleep)}, true},
		{"other exe", fault.Params{"name": name, "exe": "/usr/bin/false"}, false},
		{"user by uid", fault.Params{"name": name, "user": os.Geteuid()}, true},
		{"user by uid as text", fault.Params{"name": name, "user": uid}, true},
		{"other user", fault.Params{"name": name, "user": os.Geteuid() + 4242}, false},
		{"name regexp and cmdline", fault.Params{"name": "/^" + name + "/", "cmdline": regexp.QuoteMeta(name) + ` 300$`}, true},
		{"cmdline not matching", fault.Params{"name": name, "cmdline": ` 301$`}, false},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			plan, err := newFault(t, tc.params, env).Plan(context.Background(), "r")
			if !tc.matches {
				if err == nil || !strings.Contains(err.Error(), "no process matched") {
					t.Fatalf("Plan = %s, %v; want no match", plan, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			onlyOurs(t, plan, target)
			if len(targetPids(t, plan)) != 1 {
				t.Fatalf("plan %s: want the target", plan)
			}
		})
	}
}

func TestProtection(t *testing.T) {
	dir := t.TempDir()
	t.Run("agent.protect", func(t *testing.T) {
		name := "cc" + unique(t)
		namedSleep(t, dir, name)
		env := agentEnv(t)
		env.Protect = []*regexp.Regexp{regexp.MustCompile("^" + name + "$")}
		_, err := newFault(t, fault.Params{"name": name}, env).Plan(context.Background(), "r")
		if err == nil || !strings.Contains(err.Error(), `protected by agent.protect "^`+name+`$"`) {
			t.Fatalf("Plan: %v; want no match, naming the protected process", err)
		}
	})
	t.Run("descendants of the agent", func(t *testing.T) {
		// With the real default Self (this process), its own children are the agent's.
		name := "cc" + unique(t)
		namedSleep(t, dir, name)
		_, err := newFault(t, fault.Params{"name": name}, fault.Env{}).Plan(context.Background(), "r")
		if err == nil || !strings.Contains(err.Error(), "a descendant of the agent") {
			t.Fatalf("Plan: %v; want no match, naming the agent's child", err)
		}
	})
}

// TestPlanNeverChoosesTheAgentOnTheHost plans (and only plans: nothing is injected) the
// broadest fault on the real host and checks what it would have chosen.
func TestPlanNeverChoosesTheAgentOnTheHost(t *testing.T) {
	child := namedSleep(t, t.TempDir(), "cc"+unique(t))
	// One process the plan may choose whatever else runs on the host: a sleep whose parent
	// has exited, so it is no descendant of this (agent) process. Plan only: nothing is killed.
	out, err := exec.Command("sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!").Output()
	if err != nil {
		t.Fatal(err)
	}
	if orphan, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil {
		t.Cleanup(func() { _ = syscall.Kill(orphan, syscall.SIGKILL) })
	}
	f := newFault(t, fault.Params{"cmdline": ".*", "count": "all"}, fault.Env{})
	plan, err := f.Plan(context.Background(), "host")
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	never := map[int]string{1: "PID 1", os.Getpid(): "the test process", os.Getppid(): "its parent", child.Process.Pid: "its child"}
	s := &scanner{proc: "/proc", stats: map[int]stat{}}
	for _, a := range s.ancestors(os.Getpid()) {
		never[a] = "an ancestor of the test process"
	}
	for _, tg := range decode(t, plan).Targets {
		if why, ok := never[tg.Pid]; ok {
			t.Errorf("plan chose pid %d, %s", tg.Pid, why)
		}
		if st, err := readStat("/proc", tg.Pid); err == nil && st.flags&pfKthread != 0 {
			t.Errorf("plan chose pid %d, a kernel thread", tg.Pid)
		}
		if tg.Cmdline == "" {
			t.Errorf("plan chose pid %d, which has no command line", tg.Pid)
		}
	}
}
