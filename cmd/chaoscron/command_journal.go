package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/chaoscron/chaoscron/journal"
	"github.com/chaoscron/chaoscron/pkg/api"
	"github.com/chaoscron/chaoscron/pkg/config"
)

// journalOptions are shared by the journal verbs.
type journalOptions struct {
	configFlags
	output string
}

func (o *journalOptions) addFlags(c *cobra.Command, output bool) {
	o.addFile(c.Flags(), true)
	o.addJournal(c.Flags())
	if output {
		c.Flags().StringVarP(&o.output, "output", "o", "table", "table or json")
	}
}

func (o *journalOptions) check() error {
	if o.output != "" && o.output != "table" && o.output != "json" {
		return usageError{fmt.Errorf("-o must be table or json, not %q", o.output)}
	}
	return nil
}

// journalReader is what the inspection verbs read: the file itself (*journal.Journal), or,
// while an agent holds the file locked, that agent over its socket (*api.Client).
type journalReader interface {
	List(journal.Filter) ([]journal.Record, error)
	Get(id uint64) (journal.Record, error)
	Stats() (journal.Stats, error)
	Each(fn func(journal.Record) error) error
	Close() error
}

// openRead opens the journal read-only; inspection never changes the file. While a running
// agent holds the file (bbolt's lock keeps out even readers) it asks that agent instead,
// over the unix socket next to the journal: same records, same output.
func (o *journalOptions) openRead(c *cobra.Command) (journalReader, string, error) {
	if err := o.check(); err != nil {
		return nil, "", err
	}
	path, err := o.journalPath(c.Flags())
	if err != nil {
		return nil, "", err
	}
	j, err := journal.Open(path, journal.Options{ReadOnly: true, Timeout: 500 * time.Millisecond})
	if err == nil {
		return j, path, nil
	}
	if !errors.Is(err, journal.ErrLocked) {
		return nil, "", err
	}
	sock := api.SocketPath(path)
	if _, serr := os.Stat(sock); serr != nil {
		return nil, "", fmt.Errorf("%w: a running agent holds it, and its socket %s is not there: %w", err, sock, serr)
	}
	return api.NewClient(sock), path, nil
}

func newJournalCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "journal",
		Short: "Inspect and maintain the run journal",
	}
	c.AddCommand(newJournalList(), newJournalShow(), newJournalStats(), newJournalPrune(), newJournalExport())
	return c
}

func newJournalList() *cobra.Command {
	var o journalOptions
	var f journal.Filter
	var status, since string
	c := &cobra.Command{
		Use:   "list",
		Short: "List runs, newest first",
		Args:  args(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			f.Status = journal.Status(status)
			if since != "" {
				t, err := parseSince(since)
				if err != nil {
					return usageError{err}
				}
				f.Since = t
			}
			j, _, err := o.openRead(c)
			if err != nil {
				return err
			}
			defer j.Close()
			recs, err := j.List(f)
			damaged, err := skipDamaged(err)
			if err != nil {
				return err
			}
			if err := printRecords(c.OutOrStdout(), o.output, recs...); err != nil {
				return err
			}
			return damaged
		},
	}
	o.addFlags(c, true)
	c.Flags().StringVar(&f.Experiment, "experiment", "", "only this experiment")
	c.Flags().StringVar(&status, "status", "", "only this status (pending, active, succeeded, failed, aborted, skipped)")
	c.Flags().StringVar(&since, "since", "", "only runs started since: RFC3339 time or a duration ago (1h)")
	c.Flags().IntVar(&f.Limit, "limit", 0, "at most this many runs (0: all)")
	return c
}

func parseSince(s string) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--since %q: expected an RFC3339 time or a duration like 1h", s)
	}
	return t, nil
}

func newJournalShow() *cobra.Command {
	var o journalOptions
	c := &cobra.Command{
		Use:   "show ID",
		Short: "Show one run in full (JSON)",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(c *cobra.Command, a []string) error {
			id, err := strconv.ParseUint(a[0], 10, 64)
			if err != nil {
				return usageError{fmt.Errorf("run id %q is not a number", a[0])}
			}
			j, _, err := o.openRead(c)
			if err != nil {
				return err
			}
			defer j.Close()
			rec, err := j.Get(id)
			if err != nil {
				return fmt.Errorf("run %d: %w", id, err)
			}
			return writeJSON(c.OutOrStdout(), rec)
		},
	}
	o.addFlags(c, false)
	return c
}

func newJournalStats() *cobra.Command {
	var o journalOptions
	c := &cobra.Command{
		Use:   "stats",
		Short: "Summarise the journal: runs by status and experiment, open runs, size, halt switch",
		Args:  args(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			j, path, err := o.openRead(c)
			if err != nil {
				return err
			}
			defer j.Close()
			st, err := j.Stats()
			damaged, err := skipDamaged(err)
			if err != nil {
				return err
			}
			w := c.OutOrStdout()
			if o.output == "json" {
				if err := writeJSON(w, st); err != nil {
					return err
				}
				return damaged
			}
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "file\t%s (%d bytes, schema %d)\n", path, st.FileBytes, st.Schema)
			fmt.Fprintf(tw, "runs\t%d\n", st.Runs)
			fmt.Fprintf(tw, "open runs\t%d\n", st.Open)
			if st.Damaged > 0 {
				fmt.Fprintf(tw, "damaged runs\t%d (not counted)\n", st.Damaged)
			}
			fmt.Fprintf(tw, "halted\t%t\n", st.Halted)
			for _, name := range slices.Sorted(maps.Keys(st.Paused)) {
				p := st.Paused[name]
				fmt.Fprintf(tw, "paused %s\tsince %s: %s\n", name, p.At.Format(time.RFC3339), p.Reason)
			}
			if !st.First.IsZero() {
				fmt.Fprintf(tw, "first\t%s\nlast\t%s\n", st.First.Format(time.RFC3339), st.Last.Format(time.RFC3339))
			}
			for s, n := range st.ByStatus {
				fmt.Fprintf(tw, "status %s\t%d\n", s, n)
			}
			for e, n := range st.ByExperiment {
				fmt.Fprintf(tw, "experiment %s\t%d\n", e, n)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			return damaged
		},
	}
	o.addFlags(c, true)
	return c
}

func newJournalPrune() *cobra.Command {
	var o journalOptions
	var maxRuns int
	var maxAge time.Duration
	c := &cobra.Command{
		Use:   "prune",
		Short: "Delete old closed runs (open runs are never deleted)",
		Long: `Delete closed runs beyond the newest --max-runs and those older than --max-age (0: no
such limit); open runs are never deleted. While an agent runs, it prunes, over its socket; a
limit not given is then the running agent's (journal.max_runs, journal.max_age).`,
		Args: args(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			path, err := o.journalPath(c.Flags())
			if err != nil {
				return err
			}
			w := c.OutOrStdout()
			return fileOrAgent(path, func(j *journal.Journal) error {
				if !c.Flags().Changed("max-runs") || !c.Flags().Changed("max-age") {
					cfg, err := config.Load(o.file, map[string]any{"journal.path": path})
					if err != nil {
						return err
					}
					if !c.Flags().Changed("max-runs") {
						maxRuns = cfg.Journal.MaxRuns
					}
					if !c.Flags().Changed("max-age") {
						maxAge = cfg.Journal.MaxAge
					}
				}
				n, err := j.Prune(maxRuns, maxAge, time.Now())
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(w, "pruned %d runs (max runs %d, max age %s)\n", n, maxRuns, maxAge)
				return err
			}, func(cl *api.Client) error {
				var req api.PruneRequest
				if c.Flags().Changed("max-runs") {
					req.MaxRuns = &maxRuns
				}
				if c.Flags().Changed("max-age") {
					req.MaxAge = maxAge.String()
				}
				ctx, cancel := context.WithTimeout(c.Context(), time.Minute)
				defer cancel()
				pr, err := cl.Prune(ctx, req)
				if err != nil {
					return fmt.Errorf("prune through the running agent: %w", err)
				}
				_, err = fmt.Fprintf(w, "pruned %d runs (max runs %d, max age %s; by the running agent)\n", pr.Pruned, pr.MaxRuns, pr.MaxAge)
				return err
			})
		},
	}
	o.addFlags(c, false)
	c.Flags().IntVar(&maxRuns, "max-runs", 0, "keep at most this many closed runs (default: journal.max_runs)")
	c.Flags().DurationVar(&maxAge, "max-age", 0, "delete closed runs older than this (default: journal.max_age)")
	return c
}

func newJournalExport() *cobra.Command {
	var o journalOptions
	c := &cobra.Command{
		Use:   "export",
		Short: "Write every run as JSON lines, oldest first",
		Args:  args(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			j, _, err := o.openRead(c)
			if err != nil {
				return err
			}
			defer j.Close()
			bw := bufio.NewWriter(c.OutOrStdout())
			if cl, ok := j.(*api.Client); ok {
				// The agent's lines are already what this command prints: pass them through.
				err = cl.Export(c.Context(), func(line []byte) error {
					bw.Write(line)
					return bw.WriteByte('\n')
				})
			} else {
				enc := json.NewEncoder(bw)
				err = j.Each(func(r journal.Record) error { return enc.Encode(r) })
			}
			damaged, err := skipDamaged(err)
			if err != nil {
				return err
			}
			if err := bw.Flush(); err != nil {
				return err
			}
			return damaged
		},
	}
	o.addFlags(c, false)
	return c
}

// skipDamaged splits a read's error: damaged runs the read skipped (a
// *journal.DamagedError, naming the file and the runs), which the command reports after
// printing the rest, with exit code 1, and any other error, which fails it outright.
func skipDamaged(err error) (damaged, fatal error) {
	var de *journal.DamagedError
	if errors.As(err, &de) {
		return err, nil
	}
	return nil, err
}

// printRecords prints runs as a table or as a JSON array.
func printRecords(w io.Writer, output string, recs ...journal.Record) error {
	if output == "json" {
		if recs == nil {
			recs = []journal.Record{}
		}
		return writeJSON(w, recs)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tEXPERIMENT\tFAULT\tSTATUS\tCLEANUP\tSTARTED\tHELD\tTRIGGER\tNOTE")
	for _, r := range recs {
		held := "-"
		if !r.AppliedAt.IsZero() && !r.EndedAt.IsZero() {
			held = r.EndedAt.Sub(r.AppliedAt).Round(time.Millisecond).String()
		}
		note := r.Error
		if note == "" {
			note = r.Reason
		}
		if r.DryRun {
			note = "[dry run] " + note
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Experiment, r.Fault, r.Status, r.Cleanup,
			r.StartedAt.Local().Format("2006-01-02 15:04:05"), held, r.Trigger, note)
	}
	return tw.Flush()
}
