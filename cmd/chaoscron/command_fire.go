package main

import (
	"context"
	"errors"
	"fmt"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/chaoscron/chaoscron/journal"
	"github.com/chaoscron/chaoscron/pkg/api"
	"github.com/chaoscron/chaoscron/pkg/config"
	"github.com/chaoscron/chaoscron/pkg/runner"
)

func newFireCommand() *cobra.Command {
	var o configFlags
	var output string
	c := &cobra.Command{
		Use:   "fire -c FILE NAME",
		Short: "Run one configured experiment now, hold it for its duration, revert, and print the record",
		Long: `Run one configured experiment now. The window and the probability are not consulted (you
asked for this run); the halt switch and blackouts are. Faults an earlier agent left behind are
recovered first. SIGINT/SIGTERM end the run early; it is reverted and recorded as aborted.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(c *cobra.Command, a []string) error {
			if o.file == "" {
				return usageError{errors.New("fire needs -c FILE")}
			}
			cfg, err := o.load(c.Flags(), false)
			if err != nil {
				return err
			}
			return fire(c, cfg, a[0], output)
		},
	}
	o.addFile(c.Flags(), true)
	o.addJournal(c.Flags())
	c.Flags().BoolVar(&o.dryRun, "dry-run", false, "record what would happen; change nothing")
	c.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return c
}

func fire(c *cobra.Command, cfg *config.Config, name, output string) error {
	ctx, stop := signal.NotifyContext(c.Context(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	r, j, log, err := newRunner(cfg)
	if errors.Is(err, journal.ErrLocked) {
		return fireThroughAgent(c, cfg, name, output)
	}
	if err != nil {
		return err
	}
	defer j.Close()
	if _, err := r.Recover(ctx); err != nil {
		log.Error("recovery incomplete", "err", err)
	}
	id, ferr := r.Fire(ctx, name, runner.TriggerFire, time.Time{})
	if id != 0 && ferr == nil {
		done := make(chan struct{})
		go func() { r.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownBound)
			defer cancel()
			if err := r.Shutdown(sctx); err != nil {
				return err
			}
		}
	}
	if id != 0 {
		rec, err := j.Get(id)
		if err != nil {
			return err
		}
		if err := printRecords(c.OutOrStdout(), output, rec); err != nil {
			return err
		}
		if rec.Status == "failed" || rec.Cleanup == "failed" {
			return fmt.Errorf("run %d: %s (cleanup %s): %s", rec.ID, rec.Status, rec.Cleanup, rec.Error)
		}
	}
	return ferr
}

// fireThroughAgent asks the agent that holds the journal to run the experiment: two agents
// must never share a journal, and the running one holds, reverts and records the run.
func fireThroughAgent(c *cobra.Command, cfg *config.Config, name, output string) error {
	cl := api.NewClient(api.SocketPath(cfg.Journal.Path))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(c.Context(), time.Minute)
	defer cancel()
	rec, err := cl.Fire(ctx, name)
	if err != nil {
		return fmt.Errorf("fire %s through the running agent: %w", name, err)
	}
	fmt.Fprintf(c.ErrOrStderr(), "fired through the running agent (socket %s); it holds and reverts the run\n", api.SocketPath(cfg.Journal.Path))
	return printRecords(c.OutOrStdout(), output, rec)
}
