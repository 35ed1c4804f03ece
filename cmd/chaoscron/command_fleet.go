package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/chaoscron/chaoscron/pkg/config"
	"github.com/chaoscron/chaoscron/pkg/fleet"
)

// fleetFlags pick the group: from the config's fleet section (with -c or $CHAOSCRON_CONFIG,
// and the CHAOSCRON_FLEET__* environment, as the agent resolves it), or from flags.
type fleetFlags struct {
	configFlags
	group, namespace, kubeconfig string
}

func (o *fleetFlags) add(fs *pflag.FlagSet) {
	o.addFile(fs, false)
	fs.StringVar(&o.group, "group", "", "fleet group (default: fleet.group, as the agent resolves it)")
	fs.StringVarP(&o.namespace, "namespace", "n", "", "namespace of the group's Leases (default: as the agent resolves it)")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig (default: in-cluster credentials, else fleet.kubeconfig, $KUBECONFIG, ~/.kube/config)")
}

// client resolves the group and namespace and returns a client for them.
func (o *fleetFlags) client(fs *pflag.FlagSet) (*fleet.API, config.Fleet, error) {
	var fc config.Fleet
	if o.file != "" {
		cfg, err := config.Load(o.file, nil)
		if err != nil {
			return nil, fc, err
		}
		fc = cfg.Fleet
	} else if cfg, err := config.Load("", nil); err == nil {
		fc = cfg.Fleet
	}
	if o.kubeconfig != "" {
		fc.Kubeconfig = o.kubeconfig
	}
	if o.group != "" {
		fc.Group = o.group
	}
	if o.namespace != "" {
		fc.Namespace = o.namespace
	}
	cs, ns, err := fleet.Client(fc, "chaoscron/"+version)
	if err != nil {
		return nil, fc, err
	}
	fc, _, err = fleet.Resolve(fc, ns)
	return cs, fc, err
}

func newFleetCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "fleet",
		Short: "The agents of a fleet group: status, halt and resume, through the Kubernetes API",
	}
	c.AddCommand(newFleetStatusCommand(), newFleetHaltCommand(true), newFleetHaltCommand(false))
	return c
}

func newFleetStatusCommand() *cobra.Command {
	var o fleetFlags
	var output string
	c := &cobra.Command{
		Use:   "status",
		Short: "List the group's members, what each has in place and when it last renewed, the slots in use and the halt",
		Args:  args(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			cs, fc, err := o.client(c.Flags())
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context(), 10*time.Second)
			defer cancel()
			rep, err := fleet.Status(ctx, cs, fc.Namespace, fc.Group)
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(c.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			printFleet(c.OutOrStdout(), rep, fc)
			return nil
		},
	}
	o.add(c.Flags())
	c.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return c
}

func printFleet(w io.Writer, rep fleet.Report, fc config.Fleet) {
	live := 0
	for _, m := range rep.Members {
		if m.Live {
			live++
		}
	}
	fmt.Fprintf(w, "group %s in namespace %s: %d live members, %d of %d slots in use (fleet.max_active %s)\n",
		rep.Group, rep.Namespace, live, len(rep.Slots), fc.MaxActive.Of(max(live, 1)), fc.MaxActive)
	if rep.Halted {
		fmt.Fprintf(w, "HALTED by %s since %s: %s\n", rep.By, rep.Since.Format(time.RFC3339), rep.Reason)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POD\tINSTANCE\tRENEWED\tLIVE\tIN PLACE")
	for _, m := range rep.Members {
		var in []string
		for _, p := range m.InPlace {
			in = append(in, fmt.Sprintf("%s/%d %s until %s", p.Experiment, p.Run, p.Fault, p.Until.Format(time.TimeOnly)))
		}
		if len(in) == 0 {
			in = []string{"-"}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s ago\t%t\t%s\n", m.Pod, m.Instance, rep.Checked.Sub(m.Renewed).Round(time.Second), m.Live, strings.Join(in, ", "))
	}
	tw.Flush()
}

func newFleetHaltCommand(on bool) *cobra.Command {
	var o fleetFlags
	var reason string
	use, short := "resume", "Lift the group's halt: its agents fire on schedule again"
	if on {
		use, short = "halt --reason TEXT", "Halt the whole group: every agent reverts its faults now and fires nothing until fleet resume, also across restarts"
	}
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  args(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			if on && strings.TrimSpace(reason) == "" {
				return usageError{fmt.Errorf("--reason is required: it is shown on every agent and in the Events")}
			}
			cs, fc, err := o.client(c.Flags())
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context(), 10*time.Second)
			defer cancel()
			if err := fleet.SetHalt(ctx, cs, fc.Namespace, fc.Group, on, reason, who()); err != nil {
				return fmt.Errorf("fleet %s: %w", strings.Fields(use)[0], err)
			}
			verb := "resumed"
			if on {
				verb = "halted: every agent reverts its faults as it sees this"
			}
			fmt.Fprintf(c.OutOrStdout(), "fleet %s in %s %s\n", fc.Group, fc.Namespace, verb)
			return nil
		},
	}
	o.add(c.Flags())
	if on {
		c.Flags().StringVar(&reason, "reason", "", "why (shown by fleet status, on every agent and in the Events)")
	}
	return c
}

// who names the person or pod that halts: the pod inside a cluster, else user@host.
func who() string {
	if p := os.Getenv("POD_NAME"); p != "" {
		return "pod/" + p
	}
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}
