package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/journal"
)

// TestNextMatchesAgent: `next -c` lists exactly the fires a dry-run agent journals over the
// same seconds, with a window and a blackout that open and close inside them, and --all's
// skip details are the reasons the agent journals for the ticks it skips (record_skips).
// Then, with the halt switch on, next lists no fire and --all says why.
func TestNextMatchesAgent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// t0: a whole second far enough ahead for the agent to be up; the window opens at
	// t0+6s for 8s, the blackout at t0+10s for 5s (overlapping the window's end), and
	// the agent is compared over [t0, t0+span).
	t0 := time.Now().UTC().Truncate(time.Second).Add(5 * time.Second)
	const span = 22 * time.Second
	at := func(d time.Duration) string { // a 6-field cron expression for the second t0+d
		x := t0.Add(d)
		return fmt.Sprintf("%d %d %d * * *", x.Second(), x.Minute(), x.Hour())
	}
	cfg := writeConfig(t, dir, fmt.Sprintf(`
agent: {listen: "off", dry_run: true, timezone: UTC}
journal: {path: %s/j.db, record_skips: true}
windows:
  w: {schedule: "%s", duration: 8s}
blackouts:
  b: {schedule: "%s", duration: 5s}
experiments:
  - {name: windowed, schedule: "*/2 * * * * *", window: w, duration: 1s, fault: {type: cpu, load: 1}}
  - {name: always, schedule: "*/3 * * * * *", duration: 1s, fault: {type: cpu, load: 1}}
`, dir, at(6*time.Second), at(10*time.Second)))

	a := startAgent(t, dir, "-c", cfg)
	time.Sleep(time.Until(t0.Add(span + 1500*time.Millisecond)))
	if code := a.stop(); code != 0 {
		t.Fatalf("agent exit %d; log:\n%s", code, a.log)
	}

	type tick struct {
		exp    string
		at     time.Time
		reason string // "" for a fire, else the journaled skip reason
	}
	var journaled []tick
	for _, r := range listRuns(t, dir, "-c", cfg) {
		if r.ScheduledAt.Before(t0) || !r.ScheduledAt.Before(t0.Add(span)) {
			continue
		}
		tk := tick{r.Experiment, r.ScheduledAt, ""}
		switch {
		case r.Status == journal.Skipped:
			tk.reason = r.Reason
		case !r.DryRun || r.Status != journal.Succeeded:
			t.Fatalf("record %d: status %s dry_run %v", r.ID, r.Status, r.DryRun)
		}
		journaled = append(journaled, tk)
	}

	preview := func(extra ...string) []nextFire {
		t.Helper()
		args := append([]string{"next", "-c", cfg, "--count", "100", "-o", "json",
			"--from", t0.Add(-time.Second).Format(time.RFC3339)}, extra...)
		out, errs, code := cli(t, dir, args...)
		if code != 0 || errs != "" {
			t.Fatalf("next: exit %d, %s", code, errs)
		}
		var fires []nextFire
		if err := json.Unmarshal([]byte(out), &fires); err != nil {
			t.Fatalf("next -o json: %v\n%s", err, out)
		}
		return slices.DeleteFunc(fires, func(f nextFire) bool { return !f.At.Before(t0.Add(span)) })
	}
	var previewed, all []tick
	for _, f := range preview() {
		if f.Probability != 1 || f.Skip != "" {
			t.Fatalf("next without --all: %+v", f)
		}
		previewed = append(previewed, tick{f.Experiment, f.At.UTC(), ""})
	}
	for _, f := range preview("--all") {
		all = append(all, tick{f.Experiment, f.At.UTC(), f.Detail})
	}
	cmp := func(a, b tick) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return strings.Compare(a.exp, b.exp)
	}
	slices.SortFunc(journaled, cmp)
	slices.SortFunc(previewed, cmp)
	slices.SortFunc(all, cmp)
	fired := slices.DeleteFunc(slices.Clone(journaled), func(tk tick) bool { return tk.reason != "" })
	show := func(ts []tick) string {
		var b strings.Builder
		for _, tk := range ts {
			fmt.Fprintf(&b, "\n  %s +%v %s", tk.exp, tk.at.Sub(t0), tk.reason)
		}
		return b.String()
	}
	if !slices.Equal(previewed, fired) {
		t.Errorf("next -c lists:%s\nthe agent fired:%s", show(previewed), show(fired))
	}
	if !slices.Equal(all, journaled) {
		t.Errorf("next -c --all lists:%s\nthe agent journaled:%s", show(all), show(journaled))
	}
	reasons := map[string]bool{}
	for _, tk := range journaled {
		reasons[strings.Fields(tk.reason + " -")[0]] = true
	}
	if !reasons["window"] || !reasons["blackout"] || !reasons["-"] {
		t.Fatalf("the span did not cover fires, window and blackout skips: %v%s", reasons, show(journaled))
	}

	// The halt switch, read from the journal file: no fire, and --all says why.
	if _, errs, code := cli(t, dir, "halt", "-c", cfg); code != 0 {
		t.Fatalf("halt: %s", errs)
	}
	if f := preview(); len(f) != 0 {
		t.Fatalf("next -c while halted lists %d fires", len(f))
	}
	for _, f := range preview("--all") {
		if f.Skip != "halted" {
			t.Fatalf("next -c --all while halted: %+v", f)
		}
	}
}
