package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/internal/kube"
	"github.com/chaoscron/chaoscron/internal/testenv"
	"github.com/chaoscron/chaoscron/journal"
	"github.com/chaoscron/chaoscron/pkg/fleet"
)

// fleetRun is a group of real agent processes on a real control plane, each with a token of
// the fleet component's ServiceAccount (never an admin's).
type fleetRun struct {
	t       testing.TB
	c       *kube.Cluster
	ns      string
	admin   string // kubeconfig of an admin: the operator's fleet commands
	dirs    []string
	agents  []*agent
	renew   time.Duration
	stale   time.Duration
	dur     time.Duration // of each run: longer than stale_after + renew, so the switch is what ends them
	maxSlot int
	cfg     string
}

const fleetGroup = "web"

func newFleetRun(t testing.TB, n int) *fleetRun {
	return newFleetRunOf(t, n, fleetOpts{maxSlot: 2, dur: 8 * time.Second, schedule: "@every 1s", renew: time.Second, stale: 2 * time.Second})
}

// fleetOpts shape a fleetRun: each agent fires schedule with runs of dur.
type fleetOpts struct {
	maxSlot      int
	dur          time.Duration
	schedule     string
	renew, stale time.Duration
}

// newFleetRunOf starts n agents of one group.
func newFleetRunOf(t testing.TB, n int, o fleetOpts) *fleetRun {
	t.Helper()
	c := kube.ForTest(t)
	ctx := context.Background()
	ns := c.Namespace(t)
	rbac, err := c.ApplyFleetRBAC(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := c.ServiceAccountKubeconfig(ctx, ns, rbac.ServiceAccount.Name)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := c.AdminKubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	f := &fleetRun{t: t, c: c, ns: ns, admin: admin, renew: o.renew, stale: o.stale, dur: o.dur, maxSlot: o.maxSlot}
	cfg := fmt.Sprintf(`
agent: {listen: "off", log_format: json}
fleet: {enabled: true, group: %s, namespace: %s, kubeconfig: %s, renew: %s, stale_after: %s, max_active: %d}
experiments:
  - {name: burn, schedule: %q, duration: %s, fault: {type: cpu, load: "1%%", workers: 1}}
`, fleetGroup, ns, kc, f.renew, f.stale, f.maxSlot, o.schedule, f.dur)
	f.cfg = cfg
	for i := range n {
		f.addAgent(i)
	}
	return f
}

// addAgent starts agent i in a directory of its own.
func (f *fleetRun) addAgent(i int) {
	dir := f.t.TempDir()
	writeConfig(f.t, dir, f.cfg)
	f.dirs = append(f.dirs, dir)
	f.agents = append(f.agents, nil)
	f.start(i)
}

func (f *fleetRun) pod(i int) string { return fmt.Sprintf("web-%d", i) }

func (f *fleetRun) start(i int) {
	a := &agent{t: f.t, log: &testenv.Buffer{}}
	a.cmd = exec.Command(bin, "run", "-c", "chaoscron.yaml")
	a.cmd.Dir = f.dirs[i]
	a.cmd.Env = append(os.Environ(), "POD_NAME="+f.pod(i))
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	testenv.Start(f.t, a.cmd)
	f.agents[i] = a
}

// ctl runs a fleet command as the operator.
func (f *fleetRun) ctl(args ...string) string {
	f.t.Helper()
	out, errs, code := cli(f.t, f.dirs[0], append(append([]string{"fleet"}, args...), "--kubeconfig", f.admin, "--group", fleetGroup, "-n", f.ns)...)
	if code != 0 {
		f.t.Fatalf("fleet %v: exit %d: %s%s", args, code, out, errs)
	}
	return out
}

func (f *fleetRun) status() fleet.Report {
	f.t.Helper()
	var rep fleet.Report
	if err := json.Unmarshal([]byte(f.ctl("status", "-o", "json")), &rep); err != nil {
		f.t.Fatal(err)
	}
	return rep
}

// runs reads every agent's journal (through its socket while it runs).
func (f *fleetRun) runs() [][]journal.Record {
	var all [][]journal.Record
	for _, d := range f.dirs {
		all = append(all, listRuns(f.t, d, "-c", "chaoscron.yaml"))
	}
	return all
}

// holder returns the index of a running agent that holds a slot and whose journal has a
// fault in place, or -1. (A slot alone is not enough: it is taken before the intent, and
// given back just after the revert is recorded.)
func (f *fleetRun) holder() int {
	for _, h := range f.status().Slots {
		var i int
		if _, err := fmt.Sscanf(h.Holder, "web-%d/", &i); err != nil || f.agents[i].cmd.ProcessState != nil {
			continue
		}
		for _, r := range listRuns(f.t, f.dirs[i], "-c", "chaoscron.yaml") {
			if r.Open() && r.Status == journal.Active {
				return i
			}
		}
	}
	return -1
}

// maxOverlap is the most intervals [applied, ended) in place at one instant.
func maxOverlap(all [][]journal.Record) (peak, runs int) {
	type edge struct {
		at time.Time
		d  int
	}
	var es []edge
	for _, recs := range all {
		for _, r := range recs {
			if r.AppliedAt.IsZero() || r.EndedAt.IsZero() {
				continue
			}
			runs++
			es = append(es, edge{r.AppliedAt, +1}, edge{r.EndedAt, -1})
		}
	}
	// At one instant an end comes before a start: the slot is given back after the revert.
	slices.SortFunc(es, func(a, b edge) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.d - b.d
	})
	n := 0
	for _, e := range es {
		n += e.d
		peak = max(peak, n)
	}
	return peak, runs
}

// abortedAfter returns, per agent, the latest end of a run aborted with a reason containing
// why, and how many agents had one.
func abortedAfter(all [][]journal.Record, why string) (last time.Time, agents int) {
	for _, recs := range all {
		found := false
		for _, r := range recs {
			if r.Status == journal.Aborted && strings.Contains(r.Reason, why) {
				found = true
				if r.EndedAt.After(last) {
					last = r.EndedAt
				}
			}
		}
		if found {
			agents++
		}
	}
	return last, agents
}

func openRuns(all [][]journal.Record) int {
	n := 0
	for _, recs := range all {
		for _, r := range recs {
			if r.Open() {
				n++
			}
		}
	}
	return n
}

// TestFleetAgents: five agents of one group, every one firing @every 1s at probability 1 with
// fleet.max_active 2, on a real API server.
func TestFleetAgents(t *testing.T) {
	f := newFleetRun(t, 5)
	bound := 60 * time.Second
	if testing.Short() {
		bound = 15 * time.Second
	}
	eventually(t, 20*time.Second, "the first slot taken", func() bool { return len(f.status().Slots) > 0 })
	start := time.Now()

	t.Run("max_active holds at every instant", func(t *testing.T) {
		time.Sleep(bound - time.Since(start))
		all := f.runs()
		peak, runs := maxOverlap(all)
		t.Logf("%d runs in %s across 5 agents, at most %d in place at once (fleet.max_active %d)", runs, bound, peak, f.maxSlot)
		if peak > f.maxSlot {
			t.Fatalf("%d faults in place at once, above fleet.max_active %d", peak, f.maxSlot)
		}
		if peak < f.maxSlot || runs < f.maxSlot*int(bound/(f.dur+2*time.Second)) {
			t.Fatalf("the bound was not exercised: peak %d, %d runs", peak, runs)
		}
		for i, recs := range all {
			for _, r := range recs {
				if !r.AppliedAt.IsZero() && (r.Slot == nil || r.Slot.Lease != "chaoscron-web-slots" || !strings.HasPrefix(r.Slot.Holder, f.pod(i)+"/")) {
					t.Fatalf("agent %d run %d records slot %+v", i, r.ID, r.Slot)
				}
			}
		}
	})

	t.Run("fleet halt reaches every agent", func(t *testing.T) {
		eventually(t, 10*time.Second, "two slots in use", func() bool { return len(f.status().Slots) == f.maxSlot })
		halted := time.Now()
		f.ctl("halt", "--reason", "game day over")
		eventually(t, 10*time.Second, "every fault reverted", func() bool { return openRuns(f.runs()) == 0 })
		last, n := abortedAfter(f.runs(), "fleet halted by")
		if n < 1 {
			t.Fatal("no run was ended by the halt")
		}
		t.Logf("fleet halt: last of %d faults reverted %s after the command", n, last.Sub(halted).Round(time.Millisecond))
		// The restart of a halted agent stays halted: the halt lives in the API server.
		f.agents[0].crash()
		f.start(0)
		before := len(f.runs()[0])
		time.Sleep(3 * time.Second)
		for i, recs := range f.runs() {
			for _, r := range recs {
				if !r.AppliedAt.IsZero() && r.AppliedAt.After(last) {
					t.Errorf("agent %d applied run %d at %s while halted", i, r.ID, r.AppliedAt)
				}
			}
		}
		if got := len(f.runs()[0]); got != before {
			t.Errorf("the restarted agent recorded %d runs while halted", got-before)
		}
		if !strings.Contains(f.agents[0].log.String(), `"reason":"halted"`) {
			t.Errorf("the restarted agent does not say it is halted:\n%s", f.agents[0].log)
		}
		f.ctl("resume")
		eventually(t, 10*time.Second, "fires again after resume", func() bool { return len(f.status().Slots) > 0 })
	})

	t.Run("a slot held by a SIGKILLed agent comes back", func(t *testing.T) {
		// Not restarted: its entry expires.
		var i int
		eventually(t, 10*time.Second, "a holder", func() bool { i = f.holder(); return i >= 0 })
		f.agents[i].crash()
		killed := time.Now()
		openAtKill := map[int][]uint64{i: openIDs(f.runs()[i])}
		hold := f.stale + 3*f.renew
		eventually(t, hold+5*time.Second, "the dead agent's slot back", func() bool {
			for _, h := range f.status().Slots {
				if strings.HasPrefix(h.Holder, f.pod(i)+"/") {
					return false
				}
			}
			return true
		})
		t.Logf("slot of a SIGKILLed agent free again after %s (expiry: stale_after + 3 × renew = %s)", time.Since(killed).Round(time.Millisecond), hold)
		// Restarted at once: recovery reverts and gives the slot back before it expires.
		var j int
		eventually(t, 10*time.Second, "another holder", func() bool { j = f.holder(); return j >= 0 })
		f.agents[j].crash()
		openAtKill[j] = openIDs(f.runs()[j])
		f.start(j)
		restarted := time.Now()
		eventually(t, hold, "the slot given back by recovery", func() bool {
			for _, h := range f.status().Slots {
				if strings.HasPrefix(h.Holder, f.pod(j)+"/") && h.Expires.Before(restarted.Add(hold)) {
					return false // the dead instance's entry (a new run's would expire later)
				}
			}
			return true
		})
		t.Logf("slot given back %s after the restart", time.Since(restarted).Round(time.Millisecond))
		f.start(i)
		// A fault in place at the kill is recovered by the restarted agent. (The run may have
		// ended between the choice and the kill: then there is nothing to recover.)
		// Only the runs open at the kill: the restarted agents fire new ones at once.
		if len(openAtKill[i])+len(openAtKill[j]) == 0 {
			t.Fatal("neither SIGKILLed agent had a fault in place: the recovery was not exercised")
		}
		eventually(t, 10*time.Second, "the dead agents' runs recovered", func() bool {
			all := f.runs()
			for k, ids := range openAtKill {
				for _, id := range ids {
					if !recovered(all[k], id) {
						return false
					}
				}
			}
			return true
		})
	})

	t.Run("API server killed: every agent reverts within stale_after plus one renew", func(t *testing.T) {
		// Killed while a run has just started: it has longer left than the switch needs.
		eventually(t, 30*time.Second, "a run just applied", func() bool {
			for _, recs := range f.runs() {
				for _, r := range recs {
					if r.Open() && !r.AppliedAt.IsZero() && time.Since(r.AppliedAt) < 3*time.Second {
						return true
					}
				}
			}
			return false
		})
		if err := f.c.KillAPIServer(); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		defer func() {
			if !killed.IsZero() { // failed before it was started again
				_ = f.c.StartAPIServer(context.Background())
			}
		}()
		eventually(t, f.stale+f.renew+10*time.Second, "every fault reverted", func() bool { return openRuns(f.runs()) == 0 })
		last, n := abortedAfter(f.runs(), "not confirmed")
		if n < 1 {
			t.Fatal("no run was ended by the lost contact")
		}
		took := last.Sub(killed)
		t.Logf("API server killed: %d agents' faults reverted, the last %s after (stale_after %s + renew %s)", n, took.Round(time.Millisecond), f.stale, f.renew)
		// A generous margin over the bound for a loaded 2-core machine; the figure is logged.
		if took > f.stale+f.renew+2*time.Second {
			t.Errorf("last revert %s after the kill, want within stale_after + renew (+2 s margin)", took)
		}
		for i, a := range f.agents {
			if !strings.Contains(a.log.String(), "fleet state not confirmed") {
				t.Errorf("agent %d does not say it lost contact", i)
			}
		}
		if err := f.c.StartAPIServer(context.Background()); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "fires again with contact back", func() bool { return len(f.status().Slots) > 0 })
		killed = time.Time{}
	})

	out := f.ctl("status")
	for _, want := range []string{"group web in namespace " + f.ns + ": 5 live members", "POD  ", "web-0", "web-4", "true"} {
		if !strings.Contains(out, want) {
			t.Errorf("fleet status lacks %q:\n%s", want, out)
		}
	}
	for i, a := range f.agents {
		if code := a.stop(); code != 0 {
			t.Errorf("agent %d: exit %d\n%s", i, code, a.log)
		}
	}
	if n := openRuns(f.runs()); n != 0 {
		t.Errorf("%d runs left open after every agent stopped", n)
	}
	rep := f.status()
	if len(rep.Members) != 0 || len(rep.Slots) != 0 {
		t.Errorf("after clean stops: members %v, slots %v; want none", rep.Members, rep.Slots)
	}
}

// openIDs lists the runs open in recs.
func openIDs(recs []journal.Record) []uint64 {
	var ids []uint64
	for _, r := range recs {
		if r.Open() {
			ids = append(ids, r.ID)
		}
	}
	return ids
}

// recovered reports whether run id is closed with its fault reverted by recovery.
func recovered(recs []journal.Record, id uint64) bool {
	for _, r := range recs {
		if r.ID == id {
			return !r.Open() && r.Cleanup == journal.CleanupRecovered
		}
	}
	return false
}

// TestFleetNoAPIServer: fleet on, the API server unreachable: the agent starts, is ready
// (readiness never asks the API server), fires nothing and says why.
func TestFleetNoAPIServer(t *testing.T) {
	dir := t.TempDir()
	kc := filepath.Join(dir, "kubeconfig")
	os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t0123456789abcdef}}]
contexts: [{name: c, context: {cluster: c, user: u, namespace: default}}]
current-context: c
`), 0o600)
	cfg := writeConfig(t, dir, fmt.Sprintf(`
agent: {listen: "off", log_format: json}
journal: {record_skips: true}
fleet: {enabled: true, group: web, kubeconfig: %s, renew: 1s, stale_after: 2s}
experiments:
  - {name: burn, schedule: "@every 1s", duration: 1s, fault: {type: cpu, load: "1%%"}}
`, kc))
	a := startAgent(t, dir, "-c", cfg)
	eventually(t, 10*time.Second, "ready", func() bool { _, _, code := cli(t, dir, "probe", "ready", "-c", cfg); return code == 0 })
	eventually(t, 10*time.Second, "skips recorded", func() bool { return len(listRuns(t, dir, "-c", cfg)) >= 2 })
	named := 0
	for _, r := range listRuns(t, dir, "-c", cfg) {
		if r.Status != journal.Skipped {
			t.Errorf("run %d: %s; want skipped", r.ID, r.Status)
		}
		if strings.Contains(r.Reason, "127.0.0.1:1") {
			named++
		}
	}
	if named == 0 {
		t.Error("no skip names the unreachable API server")
	}
	if !strings.Contains(a.log.String(), `"msg":"fires suspended","instance"`) {
		t.Errorf("the log does not say why nothing fires:\n%s", a.log)
	}
	if code := a.stop(); code != 0 {
		t.Errorf("exit %d", code)
	}
}
