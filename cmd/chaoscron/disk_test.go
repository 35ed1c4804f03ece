package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/journal"
)

// The disk fill's directory is moved during the hold. Whatever happens, the journal must not
// say the cleanup is done while the fill is still there.

// diskAgent starts an agent filling dir/fill for hold, and waits until the fill is in place
// and journaled active; it returns the agent, the config and the active run.
func diskAgent(t *testing.T, dir, hold string) (*agent, string, journal.Record) {
	t.Helper()
	if err := os.Mkdir(filepath.Join(dir, "fill"), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, dir, fmt.Sprintf(`
agent: {listen: "off"}
journal: {path: %s/j.db}
experiments:
  - name: fill
    schedule: "@every 1s"
    duration: %s
    fault: {type: disk, path: %s/fill, size: 4MiB, reserve: 1MiB}
`, dir, hold, dir))
	a := startAgent(t, dir, "-c", cfg)
	var active []journal.Record
	eventually(t, 10*time.Second, "the fill to be journaled active", func() bool {
		if len(fills(t, filepath.Join(dir, "fill"))) != 1 {
			return false // and the journal may not exist yet
		}
		active = listRuns(t, dir, "-c", cfg, "--status", "active")
		return len(active) == 1
	})
	return a, cfg, active[0]
}

// moveAway renames dir/fill to dir/moved and puts a symlink to an empty directory in its place.
func moveAway(t *testing.T, dir string) {
	t.Helper()
	if err := os.Rename(filepath.Join(dir, "fill"), filepath.Join(dir, "moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "elsewhere"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("elsewhere", filepath.Join(dir, "fill")); err != nil {
		t.Fatal(err)
	}
}

func record(t *testing.T, dir, cfg string, id uint64) journal.Record {
	t.Helper()
	for _, r := range listRuns(t, dir, "-c", cfg) {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("run %d not in the journal", id)
	return journal.Record{}
}

// TestDiskDirectoryMovedDuringHold: the agent that made the fill removes it where it went.
func TestDiskDirectoryMovedDuringHold(t *testing.T) {
	dir := t.TempDir()
	a, cfg, run := diskAgent(t, dir, "1s")
	moveAway(t, dir)
	eventually(t, 10*time.Second, "the run to end", func() bool {
		return len(listRuns(t, dir, "-c", cfg, "--status", "active")) == 0
	})
	if code := a.stop(); code != 0 {
		t.Fatalf("exit %d; log:\n%s", code, a.log)
	}
	r := record(t, dir, cfg, run.ID)
	left := fills(t, filepath.Join(dir, "moved"))
	t.Logf("run %d: status %s cleanup %s %s; fills left in the moved directory: %v", r.ID, r.Status, r.Cleanup, r.Error, left)
	if r.Cleanup == journal.CleanupDone && len(left) != 0 {
		t.Fatalf("cleanup done, but the fill is still there: %v", left)
	}
	if r.Cleanup != journal.CleanupDone || len(left) != 0 {
		t.Fatalf("cleanup %s (%s), fills left %v; want the fill removed and cleanup done", r.Cleanup, r.Error, left)
	}
}

// TestDiskDirectoryMovedAfterCrash: a new agent cannot find the directory; the run's cleanup
// is failed, saying so, and the fill is left for a person to find.
func TestDiskDirectoryMovedAfterCrash(t *testing.T) {
	dir := t.TempDir()
	a, cfg, run := diskAgent(t, dir, "1h")
	a.crash()
	moveAway(t, dir)
	b := startAgent(t, dir, "-c", cfg)
	eventually(t, 10*time.Second, "the crashed run to be closed", func() bool {
		return record(t, dir, cfg, run.ID).Cleanup != journal.CleanupPending
	})
	if code := b.stop(); code != 0 {
		t.Fatalf("second agent exit %d; log:\n%s", code, b.log)
	}
	r := record(t, dir, cfg, run.ID)
	left := fills(t, filepath.Join(dir, "moved"))
	t.Logf("run %d: status %s cleanup %s %s; fills left in the moved directory: %v", r.ID, r.Status, r.Cleanup, r.Error, left)
	if len(left) != 1 {
		t.Fatalf("fills in the moved directory: %v; want the one recovery could not find", left)
	}
	if r.Cleanup != journal.CleanupFailed || !strings.Contains(r.Error, "may still exist") {
		t.Fatalf("cleanup %s (%s); want failed, saying the fill may still exist", r.Cleanup, r.Error)
	}
}
