package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/journal"
)

// TestRecoverThroughAgent: a revert failed (the fill's directory had moved); the operator
// puts the directory back and runs `chaoscron recover` while the agent runs. The agent
// retries the cleanup at once, not at its next 30 s retry, and the command prints what it did.
func TestRecoverThroughAgent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, cfg, run := diskAgent(t, dir, "1h")
	a.crash()
	moveAway(t, dir)
	b := startAgent(t, dir, "-c", cfg)
	eventually(t, 10*time.Second, "the crashed run's cleanup to fail", func() bool {
		return record(t, dir, cfg, run.ID).Cleanup == journal.CleanupFailed
	})
	// The fix: the directory back where it was. (The symlink's target keeps the agent's
	// own new fill; that is its business.)
	if err := os.Remove(filepath.Join(dir, "fill")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "moved"), filepath.Join(dir, "fill")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, errs, code := cli(t, dir, "recover", "-c", cfg)
	if code != 0 || !strings.Contains(out, "open runs: 1, recovered: 1, failed: 0") || !strings.Contains(errs, "through the running agent") {
		t.Fatalf("recover with the agent running: exit %d, %s%s", code, out, errs)
	}
	t.Logf("recover through the agent took %v", time.Since(start))
	// The crashed run's fill is gone. (The new agent may have filled the directory for a run
	// of its own once it was back, if its first fire came after the rename.)
	var u struct {
		File string `json:"file"`
	}
	if err := json.Unmarshal(run.Undo, &u); err != nil || u.File == "" {
		t.Fatalf("run %d's undo names no file: %s (%v)", run.ID, run.Undo, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "fill", filepath.Base(u.File))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the crashed run's fill %s is still there after recover (%v); fills: %v", filepath.Base(u.File), err, fills(t, filepath.Join(dir, "fill")))
	}
	if r := record(t, dir, cfg, run.ID); r.Cleanup != journal.CleanupRecovered {
		t.Fatalf("run %d after recover: cleanup %s (%s), want recovered", r.ID, r.Cleanup, r.Error)
	}
	if code := b.stop(); code != 0 {
		t.Fatalf("agent exit %d; log:\n%s", code, b.log)
	}
}

// TestPruneThroughAgent: `journal prune` while the agent runs prunes through it, and never
// the run that is open.
func TestPruneThroughAgent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := liveConfig(t, dir, fmt.Sprintf(`  - {name: blip, schedule: "@every 1s", duration: 10ms, concurrency: allow,
     fault: {type: disk, path: %s, size: 1MiB, reserve: 1MiB}}
`, dir))
	a := startAgent(t, dir, "-c", cfg)
	eventually(t, 10*time.Second, "a fill file", func() bool { return len(fills(t, dir)) > 0 })
	eventually(t, 20*time.Second, "three closed blips", func() bool {
		return len(listRuns(t, dir, "-c", cfg, "--experiment", "blip", "--status", "succeeded")) >= 3
	})
	out, errs, code := cli(t, dir, "journal", "prune", "--max-runs", "1", "-c", cfg)
	m := regexp.MustCompile(`^pruned (\d+) runs \(max runs 1, max age 720h0m0s; by the running agent\)`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("journal prune with the agent running: exit %d, %s%s", code, out, errs)
	}
	if n, _ := strconv.Atoi(m[1]); n < 3 {
		t.Fatalf("pruned %d runs, want the 3 or more closed blips", n)
	}
	if fill := listRuns(t, dir, "-c", cfg, "--experiment", "fill"); len(fill) != 1 || fill[0].Status != journal.Active {
		t.Fatalf("the open fill run after prune: %+v", fill)
	}
	if _, errs, code := cli(t, dir, "journal", "prune", "--max-age", "-1h", "-c", cfg); code != 1 || !strings.Contains(errs, "max_age") {
		t.Fatalf("prune --max-age -1h: exit %d, %s", code, errs)
	}
	if code := a.stop(); code != 0 {
		t.Fatalf("agent exit %d; log:\n%s", code, a.log)
	}
}
