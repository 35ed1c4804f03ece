package network

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/internal/testenv"
)

// The agent end to end on the host, whose kernel has tbf: cmd/chaoscron built for the test,
// a bandwidth fault on a veth in a network namespace, the agent killed with SIGKILL while the
// fault is in place. The next agent start removes it before anything fires: from the journal,
// or by sweeping when the journal file is gone. TestInVMAgentCrash does the same for netem.
func TestAgentBandwidthCrash(t *testing.T) {
	if inVM() {
		t.Skip("runs on the host; in the VM, TestInVMAgentCrash covers the agent")
	}
	requireNetns(t)
	testenv.Tool(t, "go")
	bin, err := buildAgent(t)
	if err != nil {
		t.Fatal(err)
	}
	ns := newNS(t)
	ns.innerPair(t, "cc-a", "cc-b")
	a := &agent{bin: bin, dir: t.TempDir(), journal: filepath.Join(t.TempDir(), "journal.db")}
	// No listener: with no agent port to keep out, the tbf sits alone at the root, which
	// this kernel (no sch_prio) can hold.
	config := func(name, schedule string) string {
		t.Helper()
		p := filepath.Join(a.dir, name+".yaml")
		cfg := fmt.Sprintf(`agent:
  listen: "off"
journal:
  path: %s
experiments:
  - name: bw
    schedule: "%s"
    probability: 1
    duration: 120s
    fault:
      type: network
      netns: %s
      interfaces: [cc-a]
      bandwidth: 1mbit
`, a.journal, schedule, ns.Path)
		if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fast := config("fast", "@every 1s")
	slow := config("slow", "@every 1h") // starts, recovers, fires nothing
	before := ns.qdiscs(t, "cc-a")
	faulted := func() bool { return strings.Contains(ns.qdiscs(t, "cc-a"), "qdisc tbf c4a0: root") }

	crash := func(step string) {
		t.Helper()
		cmd := a.start(t, "run", "-c", fast)
		waitFor(t, 30*time.Second, "tbf on cc-a", faulted)
		wantLines(t, "tc qdisc show dev cc-a", ns.qdiscs(t, "cc-a"), "qdisc tbf c4a0: root", "rate 1Mbit")
		_ = cmd.Process.Kill() // SIGKILL: no chance to clean up
		_ = cmd.Wait()
		if !faulted() {
			t.Fatalf("%s: tbf gone after kill -9: who removed it?", step)
		}
	}
	back := func(step string) {
		t.Helper()
		if after := ns.qdiscs(t, "cc-a"); after != before {
			t.Errorf("%s: cc-a has\n%s\nwant as before\n%s", step, after, before)
		}
	}

	// 1. The agent restarts: recovery reverts the run from the journal before anything fires.
	crash("restart")
	cmd := a.start(t, "run", "-c", slow)
	waitFor(t, 20*time.Second, "recovery by the restarted agent", func() bool { return !faulted() })
	sigterm(t, cmd)
	back("after the agent restarted")
	recs := a.records(t)
	recovered := slices.IndexFunc(recs, func(r journalRecord) bool {
		var u undo
		return r.Cleanup == "recovered" && r.Trigger != "sweep" && json.Unmarshal(r.Undo, &u) == nil && u.Qdisc.Kind == "tbf"
	})
	if recovered < 0 {
		t.Errorf("no run recovered with a tbf undo: %+v", recs)
	}

	// 2. The journal file is gone: only the sweep can find the tbf.
	crash("sweep")
	if err := os.Remove(a.journal); err != nil {
		t.Fatal(err)
	}
	cmd = a.start(t, "run", "-c", slow)
	waitFor(t, 20*time.Second, "the sweep", func() bool { return !faulted() })
	sigterm(t, cmd)
	back("after the sweep")
	recs = a.records(t)
	if !slices.ContainsFunc(recs, func(r journalRecord) bool {
		return strings.Contains(r.Reason, "removed tbf c4a0: on cc-a in "+ns.Path)
	}) {
		t.Errorf("no record of the sweep: %+v", recs)
	}
	for _, r := range recs {
		t.Logf("journal: id %d %s status %s cleanup %s trigger %s %s", r.ID, r.Experiment, r.Status, r.Cleanup, r.Trigger, r.Reason)
	}
}
