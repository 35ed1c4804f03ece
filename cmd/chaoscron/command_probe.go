package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/chaoscron/chaoscron/pkg/api"
)

// newProbeCommand is the container's liveness and readiness check, asked of the agent over the
// unix socket beside its journal. A probe over agent.listen can be made to fail from outside
// the pod (a connection flood fills that listener's slots), and a sidecar's readiness is the
// pod's: so the manifests probe with this command, which nothing outside the pod can reach.
func newProbeCommand() *cobra.Command {
	var o configFlags
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "probe ready|live",
		Short: "Exit 0 if the running agent is ready (start-up recovery done) or alive; for exec probes",
		Long: `Ask the agent that holds the journal, over its unix socket, for /readyz ("ready":
start-up recovery has finished) or /healthz ("live"). Exit 0 if it answers OK, 1 otherwise,
with the reason on stderr. Meant for Kubernetes exec probes: the socket is not reachable from
the network, so no client outside the pod can make the probe fail.`,
		Args:      args(cobra.ExactArgs(1)),
		ValidArgs: []string{"ready", "live"},
		RunE: func(c *cobra.Command, a []string) error {
			var path string
			switch a[0] {
			case "ready":
				path = "/readyz"
			case "live":
				path = "/healthz"
			default:
				return usageError{fmt.Errorf("probe %q: expected ready or live", a[0])}
			}
			jpath, err := o.journalPath(c.Flags())
			if err != nil {
				return err
			}
			cl := api.NewClient(api.SocketPath(jpath))
			defer cl.Close()
			ctx, cancel := context.WithTimeout(c.Context(), timeout)
			defer cancel()
			if err := cl.Probe(ctx, path); err != nil {
				return fmt.Errorf("probe %s: %w", a[0], err)
			}
			_, err = fmt.Fprintln(c.OutOrStdout(), "ok")
			return err
		},
	}
	o.addFile(c.Flags(), false)
	o.addJournal(c.Flags())
	c.Flags().DurationVar(&timeout, "timeout", 2*time.Second, "how long to wait for the agent's answer")
	return c
}
