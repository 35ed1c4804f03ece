package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newValidateCommand() *cobra.Command {
	var o configFlags
	c := &cobra.Command{
		Use:   "validate -c FILE",
		Short: "Check a config file; every problem is reported with file:line and key path",
		Args:  args(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			if o.file == "" {
				return usageError{fmt.Errorf("validate needs -c FILE")}
			}
			cfg, err := o.load(c.Flags(), false)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(c.OutOrStdout(), "%s: ok (%d experiments, %d windows, %d blackouts)\n",
				o.file, len(cfg.Experiments), len(cfg.Windows), len(cfg.Blackouts))
			return err
		},
	}
	o.addFile(c.Flags(), true)
	return c
}
