package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/chaoscron/chaoscron/journal"
	"github.com/chaoscron/chaoscron/pkg/api"
)

func newHaltCommand() *cobra.Command {
	var o configFlags
	var reason string
	c := &cobra.Command{
		Use:   "halt [--reason TEXT]",
		Short: "Turn the persisted halt switch on: revert every active fault now, fire nothing until resume",
		Long: `Turn the halt switch on. A running agent (reached over the socket next to its journal)
reverts every active fault before this command returns, and fires nothing until resume,
also after a restart: the switch is stored in the journal. With no agent running, the switch
is set in the journal file and the next agent starts halted.`,
		Args: args(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			return setHalt(c, &o, true, reason)
		},
	}
	o.addFile(c.Flags(), true)
	o.addJournal(c.Flags())
	c.Flags().StringVar(&reason, "reason", "", "why (recorded in the journal and on every run it ends)")
	return c
}

func newResumeCommand() *cobra.Command {
	var o configFlags
	c := &cobra.Command{
		Use:   "resume [EXPERIMENT]",
		Short: "Turn the halt switch off, or resume one paused experiment: it fires on schedule again",
		Long: `Without an argument, turn the halt switch off. With an experiment's name, clear its pause
flag (set by the API, or by the experiment itself after abort_if.max_trips runs in a row were
aborted by its stop condition) and forget its count of those aborts. Like halt, this goes to
the running agent over its socket, or to the journal file when no agent runs.`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(c *cobra.Command, argv []string) error {
			if len(argv) == 1 {
				return resumeExperiment(c, &o, argv[0])
			}
			return setHalt(c, &o, false, "")
		},
	}
	o.addFile(c.Flags(), true)
	o.addJournal(c.Flags())
	return c
}

// setHalt flips the switch in the journal file if no agent holds it, else through the agent.
func setHalt(c *cobra.Command, o *configFlags, halted bool, reason string) error {
	path, err := o.journalPath(c.Flags())
	if err != nil {
		return err
	}
	w := c.OutOrStdout()
	if reason == "" && halted {
		reason = "halted"
	}
	return fileOrAgent(path, func(j *journal.Journal) error {
		if err := j.SetHalted(halted, reason, time.Now().UTC()); err != nil {
			return err
		}
		_, err := fmt.Fprintf(w, "halted: %t (no agent running; journal %s)\n", halted, path)
		return err
	}, func(cl *api.Client) error {
		ctx, cancel := context.WithTimeout(c.Context(), 30*time.Second)
		defer cancel()
		if halted {
			hr, err := cl.Halt(ctx, reason)
			if err != nil {
				return fmt.Errorf("halt: %w", err)
			}
			_, err = fmt.Fprintf(w, "halted: true (%d active runs ended and reverted)\n", hr.Ended)
			return err
		}
		if _, err := cl.Resume(ctx); err != nil {
			return fmt.Errorf("resume: %w", err)
		}
		_, err := fmt.Fprintln(w, "halted: false")
		return err
	})
}

// resumeExperiment clears one experiment's pause flag in the journal file if no agent holds
// it, else through the agent (POST /v1/experiments/{name}/resume on its socket).
func resumeExperiment(c *cobra.Command, o *configFlags, name string) error {
	path, err := o.journalPath(c.Flags())
	if err != nil {
		return err
	}
	w := c.OutOrStdout()
	return fileOrAgent(path, func(j *journal.Journal) error {
		if err := j.SetPaused(name, false, "", time.Now().UTC()); err != nil {
			return err
		}
		_, err := fmt.Fprintf(w, "%s: resumed (no agent running; journal %s)\n", name, path)
		return err
	}, func(cl *api.Client) error {
		ctx, cancel := context.WithTimeout(c.Context(), 10*time.Second)
		defer cancel()
		if _, err := cl.SetPaused(ctx, name, false); err != nil {
			return fmt.Errorf("resume %s: %w", name, err)
		}
		_, err := fmt.Fprintf(w, "%s: resumed\n", name)
		return err
	})
}

// fileOrAgent changes the journal at path: in the file itself when no agent holds it, else
// through the agent that does, over its socket (bbolt lets one process at a time open it).
func fileOrAgent(path string, file func(*journal.Journal) error, agent func(*api.Client) error) error {
	j, err := journal.Open(path, journal.Options{Timeout: 500 * time.Millisecond})
	if err == nil {
		defer j.Close()
		return file(j)
	}
	if !errors.Is(err, journal.ErrLocked) {
		return err
	}
	cl := api.NewClient(api.SocketPath(path))
	defer cl.Close()
	return agent(cl)
}
