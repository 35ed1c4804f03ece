package reload

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chaoscron/chaoscron/internal/testenv"
	"github.com/chaoscron/chaoscron/journal"
	"github.com/chaoscron/chaoscron/pkg/config"
	"github.com/chaoscron/chaoscron/pkg/fault"
	_ "github.com/chaoscron/chaoscron/pkg/fault/disk"
	"github.com/chaoscron/chaoscron/pkg/metrics"
	"github.com/chaoscron/chaoscron/pkg/runner"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// agent is a real runner on a real journal, watched by a Watcher on path.
type agent struct {
	r   *runner.Runner
	m   *metrics.Set
	hup chan os.Signal
}

func yaml(schedule string) string {
	return fmt.Sprintf(`
agent: {listen: "off"}
experiments:
  - {name: fill, schedule: %q, duration: 1s, fault: {type: disk, path: /tmp, size: 1MiB, reserve: 1MiB}}
`, schedule)
}

func start(t *testing.T, path string, debounce time.Duration) *agent {
	t.Helper()
	jp := filepath.Join(t.TempDir(), "j.db")
	load := func() (*config.Config, error) { return config.Load(path, map[string]any{"journal.path": jp}) }
	cfg, err := load()
	must(t, err)
	j, err := journal.Open(jp, journal.Options{})
	must(t, err)
	a := &agent{m: metrics.New("test"), hup: make(chan os.Signal, 1)}
	a.r, err = runner.New(runner.Options{Config: cfg, Journal: j, Metrics: a.m, Env: fault.Env{Self: os.Getpid()},
		Agent: journal.Agent{Instance: "reload-test"}})
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	w := &Watcher{Path: path, Load: load, Runner: a.r, Metrics: a.m, HUP: a.hup, Debounce: debounce, Poll: time.Hour,
		watching: make(chan struct{})}
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = j.Close()
	})
	<-w.watching // a change before the watch is in place is the poll's to find, not tested here
	return a
}

func (a *agent) schedule() string { return a.r.Experiments()[0].Schedule }

func (a *agent) count(result string) float64 {
	return testutil.ToFloat64(a.m.ConfigReload.WithLabelValues(result))
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestConfigMapUpdate: a ConfigMap-style ..data swap reloads the config; a broken update is
// rejected, counted, and the old config keeps running; SIGHUP reloads even an unchanged file.
func TestConfigMapUpdate(t *testing.T) {
	cm := &testenv.ConfigMap{T: t, Dir: t.TempDir()}
	cm.Write(yaml("@every 1h"))
	a := start(t, cm.Path(), 50*time.Millisecond)

	cm.Write(yaml("@every 2h"))
	eventually(t, "the new schedule", func() bool { return a.schedule() == "@every 2h" })
	if ok := a.count("ok"); ok != 1 {
		t.Fatalf("chaos_config_reloads_total{ok} = %v, want 1", ok)
	}

	cm.Write(strings.Replace(yaml("@every 3h"), "duration: 1s", "duration: 1s, probability: 2", 1))
	eventually(t, "the broken config to be rejected", func() bool { return a.count("rejected") == 1 })
	if s := a.schedule(); s != "@every 2h" {
		t.Fatalf("schedule %q after a rejected update, want the old @every 2h", s)
	}

	a.hup <- os.Interrupt // any value: the watcher does not look at it
	eventually(t, "SIGHUP to reload the unchanged, broken file", func() bool { return a.count("rejected") == 2 })
}

// TestDebounced: a burst of writes is one reload, of the last content.
func TestDebounced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chaoscron.yaml")
	must(t, os.WriteFile(path, []byte(yaml("@every 1h")), 0o600))
	a := start(t, path, time.Second) // generous: the burst must fall inside it
	for i := 2; i <= 6; i++ {        // microseconds apart
		must(t, os.WriteFile(path, []byte(yaml(fmt.Sprintf("@every %dh", i))), 0o600))
	}
	eventually(t, "the last schedule", func() bool { return a.schedule() == "@every 6h" })
	time.Sleep(1500 * time.Millisecond) // a second reload would come within one more debounce
	if ok := a.count("ok"); ok != 1 {
		t.Fatalf("chaos_config_reloads_total{ok} = %v after one burst of writes, want 1", ok)
	}
}

// TestConcerns: a file beside the config (the journal, an editor's swap file) does not
// concern it; the config and a ConfigMap's ..data swap do.
func TestConcerns(t *testing.T) {
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"/etc/chaoscron/chaoscron.yaml", true},
		{"/etc/chaoscron/..data", true},
		{"/etc/chaoscron/..2026_12_04_13_00_00.123", true},
		{"/etc/chaoscron/..data_tmp", true},
		{"/etc/chaoscron/journal.db", false},
		{"/etc/chaoscron/journal.db.sock", false},
		{"/etc/chaoscron/.chaoscron.yaml.swp", false},
		{"/etc/chaoscron/chaoscron.yaml~", false},
	} {
		if got := concerns(tc.name, "chaoscron.yaml"); got != tc.want {
			t.Errorf("concerns(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}
