package request

import (
	"bufio"
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/pkg/fault"
	"github.com/chaoscron/chaoscron/pkg/fault/request/internal/nstest"
)

// TestSIGKILLTorture: an agent (the helper process) is SIGKILLed at a random moment of plan
// and inject, or while the fault is held. Then, as after a restart, the run is reverted
// from the plan the "journal" kept; in every other trial the journal is lost and only the
// sweep runs. In every trial no chaoscron table is left, the foreign look-alike is
// untouched, and a new connection reaches the app directly.
func TestSIGKILLTorture(t *testing.T) {
	cl, pod := nstest.Pair(t)
	app(t, pod, 8080)
	untouched := foreign(t, pod)
	c := client(cl, false)
	url := "http://" + nstest.PodIP + ":8080/x"
	params := fault.Params{"port": 8080, "netns": pod.Path, "abort": 503}
	raw, _ := json.Marshal(params)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	trials := 24
	if testing.Short() {
		trials = 6
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	left := 0 // trials in which the agent died with its redirect in place
	for i := range trials {
		planFile := filepath.Join(t.TempDir(), "plan.json")
		cmd := exec.Command(self)
		cmd.Env = append(os.Environ(), envHelper+"=inject", envParams+"="+string(raw), envPlanFile+"="+planFile)
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill points: a random moment from the start (during plan or inject), or a random
		// moment after "injected" (while held).
		held := i%3 == 2
		lines := make(chan string, 4)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		if held {
			for l := range lines {
				if l == "injected" {
					break
				}
				if !strings.HasPrefix(l, "planned") {
					t.Fatalf("trial %d: helper: %s", i, l)
				}
			}
		}
		time.Sleep(time.Duration(rng.IntN(40_000)) * time.Microsecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		stdin.Close()
		if len(chaoscronTables(t, pod)) > 0 {
			left++
		}

		f := newFault(t, params)
		lost := i%2 == 1
		if plan, err := os.ReadFile(planFile); err == nil && len(plan) > 0 && !lost {
			if err := f.Revert(context.Background(), plan); err != nil {
				t.Fatalf("trial %d: revert from the plan: %v", i, err)
			}
		}
		if _, err := f.Sweep(context.Background(), nil); err != nil {
			t.Fatalf("trial %d: sweep: %v", i, err)
		}
		if got := chaoscronTables(t, pod); len(got) != 0 {
			t.Fatalf("trial %d (held %v, journal lost %v): tables left after recovery: %v", i, held, lost, got)
		}
		if _, body := get(t, c, url); body != "app /x from "+nstest.ClientIP {
			t.Fatalf("trial %d: after recovery: %q, want the app reached directly", i, body)
		}
		untouched()
	}
	t.Logf("%d trials, %d left a redirect behind for recovery to remove", trials, left)
	if left == 0 {
		t.Error("no trial killed the agent with its redirect in place: the kill points do not reach it")
	}
}
