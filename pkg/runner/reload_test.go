package runner

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/journal"
	"github.com/chaoscron/chaoscron/pkg/config"
)

const reloadYAML = `
agent: {listen: "off", max_active: 5}
experiments:
  - {name: keep, schedule: "@every 1h", duration: 1h, fault: {type: disk, path: DIR, size: 1MiB, reserve: 1MiB}}
  - {name: same, schedule: "@every 1h", duration: 1h, fault: {type: disk, path: DIR, size: 1MiB, reserve: 1MiB}}
  - {name: gone, schedule: "@every 1h", duration: 1h, fault: {type: disk, path: DIR, size: 1MiB, reserve: 1MiB}}
`

// TestReload: a removed experiment's active fault is reverted and its schedule dropped; a
// changed schedule takes effect at once; an unchanged experiment keeps its state.
func TestReload(t *testing.T) {
	f := newFixture(t, reloadYAML)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	f.r.Start(ctx)
	gone, err := f.r.Fire(t.Context(), "gone", TriggerFire, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.r.SetPaused("same", true); err != nil {
		t.Fatal(err)
	}
	if len(f.fills()) != 1 {
		t.Fatalf("%d fill files before the reload", len(f.fills()))
	}

	next := strings.NewReplacer("DIR", f.dir).Replace(`
agent: {listen: "off", max_active: 5}
experiments:
  - {name: keep, schedule: "@every 2s", duration: 1h, fault: {type: disk, path: DIR, size: 1MiB, reserve: 1MiB}}
  - {name: same, schedule: "@every 1h", duration: 1h, fault: {type: disk, path: DIR, size: 1MiB, reserve: 1MiB}}
  - {name: new, schedule: "@every 1h", duration: 1h, fault: {type: cpu, workers: 1, load: 1}}
`)
	cfg, err := config.Parse([]byte(next), "next.yaml", map[string]any{"journal.path": f.jp})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := f.r.Reload(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Added, []string{"new"}) || !slices.Equal(rep.Changed, []string{"keep"}) ||
		!slices.Equal(rep.Removed, []string{"gone"}) || rep.Ended != 1 || len(rep.Restart) != 0 {
		t.Fatalf("reload report %+v", rep)
	}
	eventually := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	eventually("the removed experiment's fault to be reverted", func() bool { return len(f.fills()) == 0 })
	eventually("its run to be recorded", func() bool { return f.get(gone).Status == journal.Aborted })
	if rec := f.get(gone); rec.Reason != "config reload: experiment removed" || rec.Cleanup != journal.CleanupDone {
		t.Fatalf("removed experiment's run: %+v", rec)
	}

	infos := map[string]ExperimentInfo{}
	for _, e := range f.r.Experiments() {
		infos[e.Name] = e
	}
	if _, ok := infos["gone"]; ok || len(infos) != 3 {
		t.Fatalf("experiments after reload: %+v", infos)
	}
	if !infos["same"].Paused {
		t.Fatal("an unchanged experiment lost its pause flag")
	}
	if until := time.Until(infos["keep"].NextFire); until <= 0 || until > 2*time.Second {
		t.Fatalf("keep's next fire in %v, want within the new 2s period", until)
	}
	// And it really fires on the new schedule.
	eventually("keep to fire on its new schedule", func() bool { return len(f.fills()) == 1 })
	if _, err := f.r.Fire(t.Context(), "gone", TriggerFire, time.Time{}); err == nil {
		t.Fatal("a removed experiment can still be fired")
	}
}
