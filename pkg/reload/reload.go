// Package reload keeps a running agent's config in step with its file: it re-reads the
// config on SIGHUP and when the file (or the ConfigMap it comes from) changes, and swaps
// it into the runner. A config that does not load, validate and build is rejected as a
// whole: logged, counted in chaos_config_reloads_total{result="rejected"}, and the old
// one keeps running.
package reload

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/chaoscron/chaoscron/pkg/config"
	"github.com/chaoscron/chaoscron/pkg/metrics"
	"github.com/chaoscron/chaoscron/pkg/runner"
)

// Default timing: events are debounced (an editor or a ConfigMap update is several
// events), and the file is re-read now and then anyway, in case an event was lost.
const (
	Debounce = 250 * time.Millisecond
	Poll     = 30 * time.Second
)

// Watcher reloads the config into a runner. Fill it in and call Run.
type Watcher struct {
	Path    string                         // the config file; "" for the embedded demo (SIGHUP only)
	Load    func() (*config.Config, error) // loads the config anew, as at start (file, environment, flags)
	Runner  *runner.Runner
	Metrics *metrics.Set
	Log     *slog.Logger
	HUP     <-chan os.Signal // a forced reload per value
	// Debounce and Poll default to the package's.
	Debounce, Poll time.Duration

	last     [sha256.Size]byte // the file content last tried, loaded or rejected
	watching chan struct{}     // if set, closed once the watch is in place (for tests)
}

// Run watches until ctx ends. The directory is watched, not the file: editors and
// Kubernetes replace the file (a ConfigMap volume swaps a "..data" symlink to a new
// directory), and a watch on the old file would see nothing after the first swap.
func (w *Watcher) Run(ctx context.Context) {
	if w.Debounce <= 0 {
		w.Debounce = Debounce
	}
	if w.Poll <= 0 {
		w.Poll = Poll
	}
	if w.Log == nil {
		w.Log = slog.New(slog.DiscardHandler)
	}
	for _, result := range []string{"ok", "rejected"} {
		w.Metrics.ConfigReload.WithLabelValues(result) // zeros, not gaps, on dashboards
	}
	if w.Path != "" {
		if b, err := os.ReadFile(w.Path); err == nil {
			w.last = sha256.Sum256(b)
		}
	}
	var events <-chan fsnotify.Event
	var errs <-chan error
	if w.Path != "" {
		fw, err := fsnotify.NewWatcher()
		if err == nil {
			err = fw.Add(filepath.Dir(w.Path))
		}
		if err != nil {
			w.Log.Warn("cannot watch the config file; reload with SIGHUP", "config", w.Path, "err", err)
		} else {
			defer fw.Close()
			events, errs = fw.Events, fw.Errors
		}
	}
	if w.watching != nil {
		close(w.watching)
	}
	poll := time.NewTicker(w.Poll)
	defer poll.Stop()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	base := filepath.Base(w.Path)
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.HUP:
			w.reload("SIGHUP", true)
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if concerns(ev.Name, base) {
				debounce.Reset(w.Debounce)
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			w.Log.Warn("config watch", "err", err)
		case <-debounce.C:
			w.reload("file changed", false)
		case <-poll.C:
			if w.Path != "" {
				w.reload("poll", false)
			}
		}
	}
}

// concerns reports whether an event on name, in the config's directory, may have changed
// the config named base: the file itself, or a ConfigMap's "..data" swap (and its
// "..<timestamp>" directories). Not, say, a journal that lives in the same directory and
// changes every run.
func concerns(name, base string) bool {
	name = filepath.Base(name)
	return name == base || strings.HasPrefix(name, "..")
}

// reload loads the config, validates it, builds its faults and swaps it in; or rejects it.
// Unless forced (SIGHUP), a file whose content has not changed since the last attempt is
// left alone.
func (w *Watcher) reload(trigger string, force bool) {
	if w.Path != "" {
		b, err := os.ReadFile(w.Path)
		if err == nil {
			sum := sha256.Sum256(b)
			if sum == w.last && !force {
				return
			}
			w.last = sum
		}
	}
	cfg, err := w.Load()
	if err == nil {
		var rep runner.ReloadReport
		rep, err = w.Runner.Reload(cfg)
		if err == nil {
			w.Metrics.ConfigReload.WithLabelValues("ok").Inc()
			w.Log.Info("config reloaded", "trigger", trigger, "config", cfg.Source, "added", rep.Added,
				"changed", rep.Changed, "removed", rep.Removed, "runs_ended", rep.Ended)
			if len(rep.Restart) > 0 {
				w.Log.Warn("config changes that take effect only after a restart", "keys", rep.Restart)
			}
			return
		}
	}
	w.Metrics.ConfigReload.WithLabelValues("rejected").Inc()
	w.Log.Error("config reload rejected; the old config keeps running", "trigger", trigger, "err", err)
}
