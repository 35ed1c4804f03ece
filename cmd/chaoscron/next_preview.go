package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/chaoscron/chaoscron/pkg/config"
	"github.com/chaoscron/chaoscron/pkg/runner"
	"github.com/chaoscron/chaoscron/pkg/schedule"
)

// nextFire is one line of `next -c`. Experiment and At are the CLI's JSON contract;
// Probability and, with --all, Skip and Detail were added to it.
type nextFire struct {
	Experiment  string    `json:"experiment"`
	At          time.Time `json:"at"`
	Probability float64   `json:"probability"`
	Skip        string    `json:"skip,omitempty"`   // with --all: the reason the agent would skip this tick
	Detail      string    `json:"detail,omitempty"` // with --all: the skip, for people
}

// maxScan bounds the ticks looked at per experiment for count fires: an experiment whose
// window never opens (or is always blacked out) would otherwise be scanned forever.
const maxScan = 100_000

// preview lists, per enabled experiment, the next count ticks after from that pass the same
// checks the runner makes at the tick (halt switch, blackouts, window, pause), in that order,
// with the calendar the runner builds; with all, the next count ticks whatever they meet.
func preview(cfg *config.Config, st agentState, loc *time.Location, from time.Time, count int, all bool) ([]nextFire, error) {
	cal, err := runner.Calendar(cfg)
	if err != nil {
		return nil, err
	}
	var fires []nextFire
	for _, e := range cfg.Experiments {
		if e.Disabled {
			continue
		}
		s, err := schedule.Parse(e.Schedule, loc)
		if err != nil {
			return nil, fmt.Errorf("experiment %s: %w", e.Name, err)
		}
		t, n := from.In(loc), 0
		for scanned := 0; n < count && scanned < maxScan; scanned++ {
			if t = s.Next(t); t.IsZero() {
				break
			}
			f := nextFire{Experiment: e.Name, At: t, Probability: e.Probability}
			f.Skip, f.Detail = skipAt(cal, st, e, t)
			if all || f.Skip == "" {
				fires = append(fires, f)
				n++
			}
		}
	}
	slices.SortStableFunc(fires, func(a, b nextFire) int { return a.At.Compare(b.At) })
	return fires, nil
}

// skipAt is the runner's tick checks that do not depend on runs in flight.
func skipAt(cal *schedule.Calendar, st agentState, e config.Experiment, t time.Time) (reason, detail string) {
	if st.Halted {
		return "halted", "the halt switch is on"
	}
	if reason, detail := cal.Closed(e.Window, t); reason != "" {
		return reason, detail
	}
	if p, ok := st.Paused[e.Name]; ok {
		return "paused", "the experiment is paused: " + p.Reason
	}
	return "", ""
}

// printPreview prints the fires; a halt/pause state that could not be read is said on
// stderr with -o json (stdout stays the JSON array), in the table's header otherwise.
func printPreview(w, errw io.Writer, output string, fires []nextFire, st agentState, all bool) error {
	if output == "json" {
		if st.Unknown != "" {
			fmt.Fprintf(errw, "chaoscron: halt switch and pause flags not read (%s): assumed off\n", st.Unknown)
		}
		if fires == nil {
			fires = []nextFire{}
		}
		return writeJSON(w, fires)
	}
	if st.Unknown != "" {
		fmt.Fprintf(w, "# halt switch and pause flags not read (%s): assumed off\n", st.Unknown)
	} else if st.Halted {
		fmt.Fprintln(w, "# the halt switch is on: nothing fires until resume")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := "AT\tEXPERIMENT\tPROBABILITY"
	if all {
		head += "\tSKIP"
	}
	fmt.Fprintln(tw, head)
	for _, f := range fires {
		line := f.At.Format(time.RFC3339) + "\t" + f.Experiment + "\t" + strconv.FormatFloat(f.Probability, 'g', -1, 64)
		if all {
			skip := "-"
			if f.Skip != "" {
				skip = f.Skip + ": " + f.Detail
			}
			line += "\t" + skip
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}
