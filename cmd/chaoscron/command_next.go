package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/chaoscron/chaoscron/pkg/schedule"
)

type nextOptions struct {
	configFlags
	expr   string
	count  int
	from   string
	tz     string
	output string
	all    bool
}

func newNextCommand() *cobra.Command {
	var o nextOptions
	c := &cobra.Command{
		Use:   "next (-c FILE | --schedule EXPR)",
		Short: "Print the next fire times of a schedule, or what every experiment in a config will really fire",
		Long: `With --schedule, the next times the cron expression fires.

With -c, the fires the agent will really make: each experiment's ticks that pass the halt
switch, the experiment's pause flag, its window and the blackouts, in the agent's time zone,
with the probability each fire is rolled at. The halt switch and pause flags are read from
the journal (read-only), or from the running agent over its socket when it holds the journal;
if neither can be read, the output says so and assumes neither is set. --all lists every tick
instead, each with the reason it would be skipped. Jitter and the probability roll are not
applied; concurrency and max_active depend on runs not yet made and are not previewed.`,
		Args: args(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			if (o.file == "") == (o.expr == "") {
				return usageError{fmt.Errorf("next needs exactly one of -c FILE or --schedule EXPR")}
			}
			if o.output != "table" && o.output != "json" {
				return usageError{fmt.Errorf("-o must be table or json, not %q", o.output)}
			}
			if o.count < 1 {
				return usageError{fmt.Errorf("--count must be at least 1")}
			}
			from := time.Now()
			if o.from != "" {
				t, err := time.Parse(time.RFC3339, o.from)
				if err != nil {
					return fmt.Errorf("--from %q: expected RFC3339 like 2026-01-01T00:00:00Z", o.from)
				}
				from = t
			}
			var loc *time.Location
			if o.tz != "" {
				l, err := time.LoadLocation(o.tz)
				if err != nil {
					return fmt.Errorf("--tz %q: %w", o.tz, err)
				}
				loc = l
			}
			w := c.OutOrStdout()
			if o.expr != "" {
				if loc == nil {
					loc = time.UTC
				}
				s, err := schedule.Parse(o.expr, loc)
				if err != nil {
					return fmt.Errorf("--schedule: %w", err)
				}
				times := schedule.Next(s, from.In(loc), o.count)
				if o.output == "json" {
					return writeJSON(w, formatTimes(times))
				}
				for _, t := range times {
					fmt.Fprintln(w, t.Format(time.RFC3339))
				}
				return nil
			}
			cfg, err := o.load(c.Flags(), false)
			if err != nil {
				return err
			}
			if loc == nil {
				loc = cfg.Location()
			}
			state := o.readAgentState(c.Flags())
			fires, err := preview(cfg, state, loc, from, o.count, o.all)
			if err != nil {
				return err
			}
			return printPreview(w, c.ErrOrStderr(), o.output, fires, state, o.all)
		},
	}
	o.addFile(c.Flags(), true)
	o.addJournal(c.Flags())
	c.Flags().BoolVar(&o.all, "all", false, "with -c: every tick, with the reason each would be skipped")
	c.Flags().StringVar(&o.expr, "schedule", "", "a cron expression (5 or 6 fields, @every, @hourly, CRON_TZ=…)")
	c.Flags().IntVar(&o.count, "count", 5, "how many fire times (per experiment with -c)")
	c.Flags().StringVar(&o.from, "from", "", "start after this RFC3339 time (default: now)")
	c.Flags().StringVar(&o.tz, "tz", "", "time zone (default: UTC, or agent.timezone with -c)")
	c.Flags().StringVarP(&o.output, "output", "o", "table", "table or json")
	return c
}

func formatTimes(ts []time.Time) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Format(time.RFC3339)
	}
	return out
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
