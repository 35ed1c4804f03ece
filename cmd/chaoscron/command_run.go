package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/chaoscron/chaoscron/pkg/api"
	"github.com/chaoscron/chaoscron/pkg/config"
	"github.com/chaoscron/chaoscron/pkg/control"
	"github.com/chaoscron/chaoscron/pkg/fleet"
	"github.com/chaoscron/chaoscron/pkg/metrics"
	"github.com/chaoscron/chaoscron/pkg/reload"
	"github.com/chaoscron/chaoscron/pkg/runner"
)

// shutdownBound is how long the first SIGTERM/SIGINT waits for active faults to be reverted.
// Kubernetes' default grace period is 30 s; stay inside it.
const shutdownBound = 20 * time.Second

// pruneEvery is how often retention runs; journalSizeEvery how often
// chaos_journal_size_bytes is refreshed; retryEvery how often failed cleanups are retried.
const (
	pruneEvery       = 10 * time.Minute
	journalSizeEvery = 5 * time.Second
	retryEvery       = 30 * time.Second
)

func newRunCommand() *cobra.Command {
	var o configFlags
	c := &cobra.Command{
		Use:   "run",
		Short: "Run the agent: recover what a crash left behind, then fire experiments on schedule",
		Long: `Run the agent. Before anything fires, every fault that an earlier agent left behind
(found in the journal, and by sweeping for chaoscron's marks) is reversed.

With no config file it runs an embedded, harmless demo schedule.

SIGTERM or SIGINT: every active fault is reverted and recorded, then exit 0.
A second signal: exit at once; the next start recovers what is left.`,
		Args: args(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			cfg, err := o.load(c.Flags(), true)
			if err != nil {
				return err
			}
			return runAgent(c.Context(), cfg, func() (*config.Config, error) { return o.load(c.Flags(), true) })
		},
	}
	o.addFile(c.Flags(), false)
	o.addJournal(c.Flags())
	o.addRun(c.Flags())
	return c
}

// runAgent runs the agent on cfg until SIGTERM/SIGINT. load loads the config anew, the
// same way (file, environment, flags), for SIGHUP and changes to the file.
func runAgent(ctx context.Context, cfg *config.Config, load func() (*config.Config, error)) error {
	log := newLogger(cfg)
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// Caught from the start: SIGHUP's default action would kill the agent with its faults
	// in place.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	j, err := openJournal(cfg.Journal.Path)
	if err != nil {
		return err
	}
	defer j.Close()
	warnDamaged(log, j)

	agent := newAgent()
	log = log.With("instance", agent.Instance)
	m := metrics.New(version)
	env, err := faultEnv(cfg, log)
	if err != nil {
		return err
	}
	var r *runner.Runner
	fl, err := newFleet(cfg, agent, m, log, func(st fleet.State) { suspend(r, st) })
	if err != nil {
		return err
	}
	opt := runner.Options{Config: cfg, Journal: j, Metrics: m, Log: log, Env: env, Agent: agent}
	if fl != nil {
		opt.Fleet = fl
	}
	r, err = runner.New(opt)
	if err != nil {
		return err
	}
	if fl != nil {
		// Nothing fires until the group's state is known: it may be halted.
		suspend(r, fl.State())
	}

	token, err := apiToken(cfg)
	if err != nil {
		return err
	}
	var ready atomic.Bool
	apiOpt := api.Options{
		Metrics: m.Handler(),
		Ready: func() error {
			if !ready.Load() {
				return errors.New("start-up recovery has not finished")
			}
			return nil
		},
		Journal: j,
		Control: control.New(r),
		Token:   token,
		Log:     log,
	}
	srv, err := serve(cfg.Agent, api.Handler(apiOpt), log)
	if err != nil {
		return err
	}
	if srv != nil {
		defer srv.Close()
	}
	// The socket is what `chaoscron journal` and `chaoscron halt` reach while this agent
	// holds the journal locked. Without it chaos still runs, so a failure is logged, not fatal.
	apiOpt.Local = true
	if sock, err := serveSocket(cfg.Journal.Path, api.Handler(apiOpt), log); err != nil {
		log.Error("no API socket: journal commands cannot reach this agent", "err", err)
	} else {
		defer sock.Close()
	}
	r.UpdateJournalSize()

	log.Info("agent starting", "config", cfg.Source, "journal", cfg.Journal.Path, "experiments", len(cfg.Experiments),
		"dry_run", cfg.Agent.DryRun, "listen", cfg.Agent.Listen, "version", version)
	rep, err := r.Recover(ctx)
	log.Info("start-up recovery finished", "open", rep.Open, "recovered", rep.Recovered, "failed", rep.Failed,
		"swept", len(rep.Swept), "took", rep.Took.String())
	if err != nil {
		// Keep going: what could not be reverted stays open and is retried; refusing to start
		// would leave it behind for certain.
		log.Error("start-up recovery incomplete", "err", err)
	}
	if r.Halted() {
		log.Warn("halt switch is on: nothing fires until resume")
	}

	fleetDone := make(chan struct{})
	fctx, fcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer fcancel()
	if fl != nil {
		// Its own context: at shutdown the runner's reverts give their slots back first.
		go func() { defer close(fleetDone); fl.Run(fctx) }()
	} else {
		close(fleetDone)
	}
	r.Start(ctx)
	ready.Store(true)
	w := &reload.Watcher{Load: load, Runner: r, Metrics: m, Log: log, HUP: hup}
	if cfg.Source != config.DemoSource {
		w.Path = cfg.Source
	}
	go w.Run(ctx)
	go r.RetryCleanups(ctx, retryEvery)
	go r.KeepJournal(ctx, pruneEvery, journalSizeEvery)

	<-ctx.Done()
	stop() // a second signal now takes the default action: the process dies at once
	log.Info("shutting down: reverting active faults")
	ready.Store(false)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownBound)
	defer cancel()
	err = r.Shutdown(sctx)
	fcancel()
	<-fleetDone
	if err != nil {
		log.Error("shutdown incomplete; the next start recovers the rest", "err", err)
		return err
	}
	log.Info("stopped; no fault left behind")
	return nil
}

// serve listens on agent.listen (if enabled) and serves h in the background.
func serve(a config.Agent, h http.Handler, log *slog.Logger) (*http.Server, error) {
	if !a.ListenEnabled() {
		return nil, nil
	}
	addr := a.Listen
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	conns, err := api.NetworkConns()
	if err != nil {
		log.Warn("open-files limit", "err", err)
	}
	srv := api.NewServer(h)
	ln = api.LimitConns(ln, conns)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			// Chaos goes on without metrics rather than dying with faults in place.
			log.Error("http server stopped", "err", err)
		}
	}()
	log.Info("serving metrics and health", "addr", ln.Addr().String(), "max_conns", conns)
	return srv, nil
}
