package runner

import (
	"context"
	"os"
	"time"
)

// Prune deletes the closed runs beyond the newest maxRuns and those older than maxAge (0:
// no such limit); open runs are never deleted. It returns how many it deleted, and
// refreshes chaos_journal_size_bytes.
func (r *Runner) Prune(maxRuns int, maxAge time.Duration) (int, error) {
	n, err := r.j.Prune(maxRuns, maxAge, time.Now())
	if n > 0 {
		r.log.Info("journal pruned", "removed", n, "max_runs", maxRuns, "max_age", maxAge.String())
	}
	r.UpdateJournalSize()
	return n, err
}

// KeepJournal keeps the journal within journal.max_runs and journal.max_age of the config
// in force, a reloaded one included: it prunes at once and then every pruneEvery, and
// refreshes chaos_journal_size_bytes every sizeEvery, until ctx ends. Pruning is a write
// like any other, so it goes on while runs start and end.
func (r *Runner) KeepJournal(ctx context.Context, pruneEvery, sizeEvery time.Duration) {
	prune := func() {
		j := r.Config().Journal
		if _, err := r.Prune(j.MaxRuns, j.MaxAge); err != nil {
			r.log.Warn("journal prune", "err", err)
		}
	}
	prune()
	pt, st := time.NewTicker(pruneEvery), time.NewTicker(sizeEvery)
	defer pt.Stop()
	defer st.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-pt.C:
			prune()
		case <-st.C:
			r.UpdateJournalSize()
		}
	}
}

// UpdateJournalSize sets chaos_journal_size_bytes from the journal file's size.
func (r *Runner) UpdateJournalSize() {
	if fi, err := os.Stat(r.j.Path()); err == nil {
		r.m.JournalBytes.Set(float64(fi.Size()))
	}
}
