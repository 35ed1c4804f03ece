package main

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

// Reload timing: events are debounced (an editor or a ConfigMap update is several events),
// and the file is re-read now and then anyway, in case an event was lost.
const (
	reloadDebounce = 250 * time.Millisecond
	reloadPoll     = 30 * time.Second
)

// reloader re-reads the config on SIGHUP and when the file changes, and swaps it into the
// runner. A config that does not load, validate and build is rejected as a whole: logged,
// counted in chaos_config_reloads_total{result="rejected"}, and the old one keeps running.
type reloader struct {
	path string // the config file; "" for the embedded demo (SIGHUP only)
	load func() (*config.Config, error)
	r    *runner.Runner
	m    *metrics.Set
	log  *slog.Logger
	hup  <-chan os.Signal
	last [sha256.Size]byte // the file content last tried, loaded or rejected
}

// run watches until ctx ends. The directory is watched, not the file: editors and
// Kubernetes replace the file (a ConfigMap volume swaps a "..data" symlink to a new
// directory), and a watch on the old file would see nothing after the first swap.
func (rl *reloader) run(ctx context.Context) {
	if rl.path != "" {
		if b, err := os.ReadFile(rl.path); err == nil {
			rl.last = sha256.Sum256(b)
		}
	}
	var events <-chan fsnotify.Event
	var errs <-chan error
	if rl.path != "" {
		w, err := fsnotify.NewWatcher()
		if err == nil {
			err = w.Add(filepath.Dir(rl.path))
		}
		if err != nil {
			rl.log.Warn("cannot watch the config file; reload with SIGHUP", "config", rl.path, "err", err)
		} else {
			defer w.Close()
			events, errs = w.Events, w.Errors
		}
	}
	poll := time.NewTicker(reloadPoll)
	defer poll.Stop()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	base := filepath.Base(rl.path)
	for {
		select {
		case <-ctx.Done():
			return
		case <-rl.hup:
			rl.reload("SIGHUP", true)
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			// Only the file itself or a ConfigMap's "..data" swap; not, say, a journal that
			// lives in the same directory and changes every run.
			if name := filepath.Base(ev.Name); name == base || strings.HasPrefix(name, "..") {
				debounce.Reset(reloadDebounce)
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			rl.log.Warn("config watch", "err", err)
		case <-debounce.C:
			rl.reload("file changed", false)
		case <-poll.C:
			if rl.path != "" {
				rl.reload("poll", false)
			}
		}
	}
}

// reload loads the config into a fresh koanf instance, validates it, builds its faults and
// swaps it in; or rejects it. Unless forced (SIGHUP), a file whose content has not changed
// since the last attempt is left alone.
func (rl *reloader) reload(trigger string, force bool) {
	if rl.path != "" {
		b, err := os.ReadFile(rl.path)
		if err == nil {
			sum := sha256.Sum256(b)
			if sum == rl.last && !force {
				return
			}
			rl.last = sum
		}
	}
	cfg, err := rl.load()
	if err == nil {
		var rep runner.ReloadReport
		rep, err = rl.r.Reload(cfg)
		if err == nil {
			rl.m.ConfigReload.WithLabelValues("ok").Inc()
			rl.log.Info("config reloaded", "trigger", trigger, "config", cfg.Source, "added", rep.Added,
				"changed", rep.Changed, "removed", rep.Removed, "runs_ended", rep.Ended)
			if len(rep.Restart) > 0 {
				rl.log.Warn("config changes that take effect only after a restart", "keys", rep.Restart)
			}
			return
		}
	}
	rl.m.ConfigReload.WithLabelValues("rejected").Inc()
	rl.log.Error("config reload rejected; the old config keeps running", "trigger", trigger, "err", err)
}
