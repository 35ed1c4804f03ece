// Command chaoscron is a chaos-engineering agent: it fires named experiments from cron
// expressions, injects faults, journals every run before it touches the system, and reverses
// whatever a crashed agent left behind before it resumes.
//
// This package is wiring only: flags, config, journal, runner, output.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	_ "time/tzdata" // zone data in the binary: the image has none

	_ "github.com/chaoscron/chaoscron/pkg/fault/all" // register every fault type
)

// version is stamped at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes, part of the CLI contract.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// usageError marks errors in how the command was called (exit 2), as opposed to invalid
// input or failures (exit 1).
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "chaoscron:", err)
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitFail
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "chaoscron",
		Short:         "Scheduled chaos experiments that never leave a fault behind",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())}
	})
	root.AddCommand(
		newRunCommand(),
		newValidateCommand(),
		newNextCommand(),
		newFireCommand(),
		newRecoverCommand(),
		newHaltCommand(),
		newResumeCommand(),
		newJournalCommand(),
		newFleetCommand(),
		newProbeCommand(),
		newVersionCommand(),
	)
	return root
}

// args wraps a cobra positional-argument check so its failure is a usage error.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(c *cobra.Command, a []string) error {
		if err := check(c, a); err != nil {
			return usageError{err}
		}
		return nil
	}
}
