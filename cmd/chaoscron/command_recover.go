package main

import (
	"fmt"

	"github.com/spf13/cobra"

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
journal run owns. Exit 1 if anything could not be reverted.`,
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
			r, j, _, err := newRunner(cfg)
			if err != nil {
				return err
			}
			defer j.Close()
			rep, rerr := r.Recover(c.Context())
			w := c.OutOrStdout()
			fmt.Fprintf(w, "open runs: %d, recovered: %d, failed: %d, swept: %d (%s)\n",
				rep.Open, rep.Recovered, rep.Failed, len(rep.Swept), rep.Took.Round(1000))
			for _, s := range rep.Swept {
				fmt.Fprintln(w, "swept:", s)
			}
			return rerr
		},
	}
	o.addFile(c.Flags(), false)
	o.addJournal(c.Flags())
	return c
}

func journalOverride(c *cobra.Command, o *configFlags) map[string]any {
	if c.Flags().Changed("journal") {
		return map[string]any{"journal.path": o.journal}
	}
	return nil
}
