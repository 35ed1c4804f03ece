package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/chaoscron/chaoscron/journal"
	"github.com/chaoscron/chaoscron/pkg/api"
	"github.com/chaoscron/chaoscron/pkg/config"
)

func newRecoverCommand() *cobra.Command {
	var o configFlags
	c := &cobra.Command{
		Use:   "recover [-c FILE] [--journal PATH]",
		Short: "Reverse every fault left behind (journal runs still open, then a sweep) and exit",
		Long: `Reverse every fault an earlier agent left behind, without scheduling anything: every
journal run whose cleanup is pending or failed is reverted from its recorded undo. With -c, each
configured fault that can sweep (network) also removes what carries chaoscron's mark but no
journal run owns. Exit 1 if anything could not be reverted.

While an agent runs (it holds the journal), that agent has recovered at its start and retries
failed cleanups every 30 s: recover then asks it, over its socket, to retry them now and to
sweep, and prints what it did. Use it once the cause of a failed revert is fixed.`,
		Args: args(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			var cfg *config.Config
			var err error
			if o.file != "" {
				cfg, err = o.load(c.Flags(), false)
			} else {
				cfg, err = config.Load("", journalOverride(c, &o))
			}
			if err != nil {
				return err
			}
			return fileOrAgent(cfg.Journal.Path, func(j *journal.Journal) error {
				r, _, err := runnerOn(cfg, j)
				if err != nil {
					return err
				}
				rep, rerr := r.Recover(c.Context())
				printRecovery(c.OutOrStdout(), rep.Open, rep.Recovered, rep.Failed, rep.Swept, rep.Took)
				return rerr
			}, func(cl *api.Client) error {
				return recoverThroughAgent(c, cl, api.SocketPath(cfg.Journal.Path))
			})
		},
	}
	o.addFile(c.Flags(), false)
	o.addJournal(c.Flags())
	return c
}

// recoverThroughAgent asks the agent that holds the journal to retry its failed cleanups
// now and to sweep: two agents must never share a journal.
func recoverThroughAgent(c *cobra.Command, cl *api.Client, sock string) error {
	ctx, cancel := context.WithTimeout(c.Context(), 5*time.Minute)
	defer cancel()
	rr, err := cl.Recover(ctx)
	if err != nil {
		return fmt.Errorf("recover through the running agent: %w", err)
	}
	fmt.Fprintf(c.ErrOrStderr(), "recovered through the running agent (socket %s)\n", sock)
	printRecovery(c.OutOrStdout(), rr.Open, rr.Recovered, rr.Failed, rr.Swept, time.Duration(rr.TookSeconds*float64(time.Second)))
	if rr.Error != "" {
		return errors.New(rr.Error)
	}
	return nil
}

// printRecovery prints what a recovery found and did, the same whoever did it.
func printRecovery(w io.Writer, open, recovered, failed int, swept []string, took time.Duration) {
	fmt.Fprintf(w, "open runs: %d, recovered: %d, failed: %d, swept: %d (%s)\n",
		open, recovered, failed, len(swept), took.Round(time.Microsecond))
	for _, s := range swept {
		fmt.Fprintln(w, "swept:", s)
	}
}

func journalOverride(c *cobra.Command, o *configFlags) map[string]any {
	if c.Flags().Changed("journal") {
		return map[string]any{"journal.path": o.journal}
	}
	return nil
}
