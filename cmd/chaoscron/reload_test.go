package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/internal/testenv"
	"github.com/chaoscron/chaoscron/journal"
)

// TestHotReload: a ConfigMap-style update changes an experiment's schedule without a
// restart; a broken update is rejected (logged, counted) while the old config keeps
// running; SIGHUP reloads; removing an experiment reverts its active fault.
func TestHotReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addr := freeAddr(t)
	cm := &testenv.ConfigMap{T: t, Dir: filepath.Join(dir, "conf")}
	cfg := func(schedule, extra string) string {
		return fmt.Sprintf(`
agent: {listen: "%s", max_active: 5}
journal: {path: %s/j.db}
experiments:
  - {name: tick, schedule: "%s", duration: 100ms, fault: {type: disk, path: %s, size: 1MiB, reserve: 1MiB}}
%s`, addr, dir, schedule, dir, extra)
	}
	hold := fmt.Sprintf(`  - {name: hold, schedule: "@every 1s", duration: 1h, fault: {type: disk, path: %s, size: 1MiB, reserve: 1MiB}}`, dir)
	cm.Write(cfg("@every 1h", hold))
	a := startAgent(t, dir, "-c", cm.Path())
	runsOf := func(name string) int {
		out, _, code := cli(t, dir, "journal", "list", "-o", "json", "--journal", filepath.Join(dir, "j.db"), "--experiment", name)
		var recs []journal.Record
		if code != 0 || json.Unmarshal([]byte(out), &recs) != nil {
			return -1 // not started yet
		}
		return len(recs)
	}
	eventually(t, 10*time.Second, "hold's fault", func() bool { return runsOf("hold") == 1 })
	if runsOf("tick") != 0 {
		t.Fatal("tick fired on @every 1h")
	}

	// New schedule, through a symlink swap: takes effect without a restart.
	cm.Write(cfg("@every 1s", hold))
	eventually(t, 10*time.Second, "tick to fire on its new schedule", func() bool { return runsOf("tick") >= 1 })
	if !strings.Contains(a.log.String(), `"msg":"config reloaded"`) {
		t.Fatalf("no reload logged:\n%s", a.log)
	}

	// A broken update: rejected, logged, counted; the old config keeps firing.
	cm.Write(cfg("@every 1s", "  - {name: bad, schedule: \"@every 1s\", probability: 2, duration: 1s, fault: {type: cpu}}\n"))
	eventually(t, 10*time.Second, "the broken config to be rejected", func() bool {
		return strings.Contains(a.log.String(), `"msg":"config reload rejected; the old config keeps running"`)
	})
	if !strings.Contains(a.log.String(), "probability: must be between 0 and 1, got 2") {
		t.Fatalf("the rejection does not say what is wrong:\n%s", a.log)
	}
	_, fams := scrape(t, addr)
	if ok, rej := metric(fams, "chaos_config_reloads_total", "result=ok"), metric(fams, "chaos_config_reloads_total", "result=rejected"); ok != 1 || rej != 1 {
		t.Fatalf("chaos_config_reloads_total: ok %v rejected %v, want 1 and 1", ok, rej)
	}
	before := runsOf("tick")
	eventually(t, 10*time.Second, "tick to keep firing on the old config", func() bool { return runsOf("tick") > before })
	if len(fills(t, dir)) == 0 {
		t.Fatal("hold's fault is gone although the broken config was rejected")
	}

	// SIGHUP with the broken file still there: rejected again. Then a good file without
	// hold: its active fault is reverted.
	_ = a.cmd.Process.Signal(syscall.SIGHUP)
	eventually(t, 5*time.Second, "SIGHUP to reload", func() bool {
		_, fams := scrape(t, addr)
		return metric(fams, "chaos_config_reloads_total", "result=rejected") == 2
	})
	cm.Write(cfg("@every 1h", ""))
	eventually(t, 10*time.Second, "hold's fault to be reverted", func() bool { return len(fills(t, dir)) == 0 })
	recs := listRuns(t, dir, "--journal", filepath.Join(dir, "j.db"), "--experiment", "hold")
	if len(recs) != 1 || recs[0].Status != journal.Aborted || recs[0].Reason != "config reload: experiment removed" {
		t.Fatalf("hold's run after it was removed: %+v", recs)
	}
	if code := a.stop(); code != 0 {
		t.Fatalf("agent exit %d; log:\n%s", code, a.log)
	}
}
