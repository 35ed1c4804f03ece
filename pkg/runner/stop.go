package runner

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/chaoscron/chaoscron/pkg/config"
)

// StopCondition is the cause a run is ended with when its abort_if trips; the run's
// journal reason is its message ("stop condition: …").
type StopCondition struct {
	URL    string
	Misses int
	Last   string // what the last check saw
}

func (s *StopCondition) Error() string {
	return fmt.Sprintf("stop condition: GET %s failed %d times in a row (last: %s)", s.URL, s.Misses, s.Last)
}

// watchStop checks a run's stop condition every interval while ctx (the run's) lives, and
// ends the run, with a *StopCondition as the cause, after cond.Failures misses in a row. The
// run's own goroutine then reverts the fault at once, as for a halt.
func (r *Runner) watchStop(ctx context.Context, cond config.AbortIf, rn *run, log *slog.Logger) {
	client := probeClient(cond)
	t := time.NewTicker(cond.Interval)
	defer t.Stop()
	misses := 0
	for {
		select {
		case <-ctx.Done():
			client.CloseIdleConnections()
			return
		case <-t.C:
		}
		last := checkOnce(ctx, client, cond)
		if last == "" {
			misses = 0
			continue
		}
		if ctx.Err() != nil {
			return // the run ended while the check was under way: not a miss
		}
		misses++
		log.Warn("stop condition check failed", "url", cond.HTTP, "misses", misses, "of", cond.Failures, "last", last)
		if misses >= cond.Failures {
			rn.cancel(&StopCondition{URL: cond.HTTP, Misses: misses, Last: last})
			return
		}
	}
}

// probeClient is the HTTP client of a stop condition's checks. Redirects are not followed: a
// health endpoint that redirects is answering something else than it was asked, and counting
// that as healthy would hide the miss.
func probeClient(cond config.AbortIf) *http.Client {
	return &http.Client{
		Timeout:       cond.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// probe checks the stop condition once before a run's intent (Chaos Toolkit's steady-state
// hypothesis, AWS FIS's stop conditions checked at start) and returns "" if the target is
// healthy, else what was wrong. One miss is enough to skip: not injecting is the safe side,
// and the next tick probes again.
func (r *Runner) probe(ctx context.Context, cond config.AbortIf) string {
	client := probeClient(cond)
	defer client.CloseIdleConnections()
	return checkOnce(ctx, client, cond)
}

// checkOnce does one check and returns "" if it passed, else what was wrong.
func checkOnce(ctx context.Context, client *http.Client, cond config.AbortIf) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cond.HTTP, nil)
	if err != nil {
		return err.Error()
	}
	req.Header.Set("User-Agent", "chaoscron-stop-condition")
	resp, err := client.Do(req)
	if err != nil {
		return err.Error()
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // reuse the connection
	resp.Body.Close()
	if resp.StatusCode != cond.ExpectStatus {
		return fmt.Sprintf("status %d, want %d", resp.StatusCode, cond.ExpectStatus)
	}
	return ""
}
