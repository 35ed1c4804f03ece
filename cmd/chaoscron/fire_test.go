package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/journal"
)

// TestFireThroughRunningAgent: `chaoscron fire` while an agent holds the journal asks that
// agent (over its socket) to run the experiment, instead of failing on bbolt's lock.
func TestFireThroughRunningAgent(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`
agent: {listen: "off"}
journal: {path: %s/j.db}
experiments:
  - {name: fill, schedule: "@every 1h", duration: 1h, fault: {type: disk, path: %s, size: 1MiB, reserve: 1MiB}}
`, dir, dir))
	a := startAgent(t, dir, "-c", cfg)
	eventually(t, 10*time.Second, "the agent's socket", func() bool {
		_, _, code := cli(t, dir, "journal", "stats", "-c", cfg)
		return code == 0
	})
	out, errs, code := cli(t, dir, "fire", "-c", cfg, "fill", "-o", "json")
	if code != 0 {
		t.Fatalf("fire with a running agent: exit %d\n%s%s", code, out, errs)
	}
	var recs []journal.Record
	if err := json.Unmarshal([]byte(out), &recs); err != nil || len(recs) != 1 {
		t.Fatalf("fire -o json: %v\n%s", err, out)
	}
	if r := recs[0]; r.Status != journal.Active || r.Trigger != "api" || r.Agent.PID != a.cmd.Process.Pid {
		t.Fatalf("fired run: status %s trigger %s agent pid %d (agent is %d)", r.Status, r.Trigger, r.Agent.PID, a.cmd.Process.Pid)
	}
	if !strings.Contains(errs, "through the running agent") {
		t.Fatalf("fire did not say it went through the agent: %q", errs)
	}
	if n := len(fills(t, dir)); n != 1 {
		t.Fatalf("%d fill files while the fired run is active, want 1", n)
	}
	if code := a.stop(); code != 0 {
		t.Fatalf("agent exit %d", code)
	}
	if n := len(fills(t, dir)); n != 0 {
		t.Fatalf("%d fill files after the agent stopped", n)
	}
}
