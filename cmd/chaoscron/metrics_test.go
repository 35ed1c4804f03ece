package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/chaoscron/chaoscron/journal"
	"github.com/chaoscron/chaoscron/pkg/api"
)

// freeAddr returns a 127.0.0.1 address with a port nobody listened on a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// scrape fetches /metrics and returns the raw text and the parsed families.
func scrape(t *testing.T, addr string) ([]byte, map[string]*dto.MetricFamily) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return raw, fams
}

// metric returns the value of the sample of family name whose labels include want ("k=v"
// pairs), or -1 if there is none. A histogram's value is its sample count.
func metric(fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	f, ok := fams[name]
	if !ok {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for _, kv := range want {
			k, v, _ := strings.Cut(kv, "=")
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// TestMetricsMatchJournal runs real successes, failures (a disk fault on a missing
// directory fails at plan) and seeded probability skips, halts, and checks that every
// counter agrees with the journal, which records every one of them (record_skips). (promtool's
// lint and a real Prometheus are in pkg/api, where the tool gates live.)
func TestMetricsMatchJournal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := writeConfig(t, dir, fmt.Sprintf(`
agent: {listen: "%s", seed: 42, max_active: 5}
journal: {path: %s/j.db, record_skips: true}
experiments:
  - {name: ok, schedule: "@every 1s", duration: 100ms, fault: {type: disk, path: %s, size: 1MiB, reserve: 1MiB}}
  - {name: bad, schedule: "@every 1s", duration: 100ms, fault: {type: disk, path: %s/missing, size: 1MiB}}
  - {name: dice, schedule: "@every 1s", probability: 0.5, duration: 100ms, fault: {type: disk, path: %s, size: 1MiB, reserve: 1MiB}}
`, addr, dir, dir, dir, dir))
	a := startAgent(t, dir, "-c", cfg)
	cl := api.NewClient(filepath.Join(dir, "j.db.sock"))
	defer cl.Close()

	count := func(recs []journal.Record, keep func(r journal.Record) bool) float64 {
		n := 0
		for _, r := range recs {
			if keep(r) {
				n++
			}
		}
		return float64(n)
	}
	eventually(t, 20*time.Second, "successes, failures and probability skips", func() bool {
		recs, err := cl.List(journal.Filter{})
		if err != nil {
			return false
		}
		return count(recs, func(r journal.Record) bool { return r.Experiment == "ok" && r.Status == journal.Succeeded }) >= 2 &&
			count(recs, func(r journal.Record) bool { return r.Experiment == "bad" && r.Status == journal.Failed }) >= 2 &&
			count(recs, func(r journal.Record) bool { return r.Experiment == "dice" && r.Status == journal.Skipped }) >= 1
	})
	if _, err := cl.Halt(t.Context(), "metrics test"); err != nil {
		t.Fatal(err)
	}

	// Ticks go on while halted (each one a journaled skip), so compare a scrape with the
	// journal and retry until no tick fell between the two.
	var raw []byte
	var problems []string
	for try := 0; try < 20; try++ {
		var fams map[string]*dto.MetricFamily
		raw, fams = scrape(t, addr)
		recs, err := cl.List(journal.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		problems = problems[:0]
		check := func(what string, got, want float64) {
			if got != want {
				problems = append(problems, fmt.Sprintf("%s = %v, journal says %v", what, got, want))
			}
		}
		check(`chaos_injections_total{disk,success}`, metric(fams, "chaos_injections_total", "failure_type=disk", "status=success"),
			count(recs, func(r journal.Record) bool { return !r.AppliedAt.IsZero() }))
		check(`chaos_injections_total{disk,failed}`, metric(fams, "chaos_injections_total", "failure_type=disk", "status=failed"),
			count(recs, func(r journal.Record) bool { return r.Status == journal.Failed }))
		check(`chaos_injections_total{disk,skipped}`, metric(fams, "chaos_injections_total", "failure_type=disk", "status=skipped"),
			count(recs, func(r journal.Record) bool { return r.Status == journal.Skipped }))
		check(`chaos_skips_total{dice,probability}`, metric(fams, "chaos_skips_total", "experiment=dice", "reason=probability"),
			count(recs, func(r journal.Record) bool {
				return r.Experiment == "dice" && r.Status == journal.Skipped && strings.Contains(r.Reason, "probability")
			}))
		for _, e := range []string{"ok", "bad", "dice"} {
			for _, st := range []journal.Status{journal.Succeeded, journal.Failed, journal.Aborted} {
				want := count(recs, func(r journal.Record) bool { return r.Experiment == e && r.Status == st })
				got := metric(fams, "chaos_runs_total", "experiment="+e, "status="+string(st))
				if got == -1 {
					got = 0
				}
				check(fmt.Sprintf("chaos_runs_total{%s,%s}", e, st), got, want)
			}
		}
		check("chaos_injection_duration_seconds_count{disk}", metric(fams, "chaos_injection_duration_seconds", "failure_type=disk"),
			count(recs, func(r journal.Record) bool { return !r.AppliedAt.IsZero() && r.Cleanup == journal.CleanupDone }))
		check("chaos_injection_active{disk}", metric(fams, "chaos_injection_active", "failure_type=disk"), 0)
		check("chaos_agent_halted", metric(fams, "chaos_agent_halted"), 1)
		check("chaos_journal_open_runs", metric(fams, "chaos_journal_open_runs"), 0)
		check(`chaos_build_info{version="dev"}`, metric(fams, "chaos_build_info", "version=dev"), 1)
		if v := metric(fams, "chaos_journal_size_bytes"); v < 32<<10 {
			problems = append(problems, fmt.Sprintf("chaos_journal_size_bytes = %v, want at least a bbolt file's 32 KiB", v))
		}
		next := metric(fams, "chaos_experiment_next_fire_timestamp_seconds", "experiment=ok")
		if now := float64(time.Now().Unix()); next < now-1 || next > now+2 {
			problems = append(problems, fmt.Sprintf("next fire of ok at %v, now is %v (@every 1s)", next, now))
		}
		if len(problems) == 0 {
			t.Logf("after %d runs: metrics agree with the journal", len(recs))
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(problems) > 0 {
		t.Fatalf("metrics disagree with the journal:\n%s\n%s", strings.Join(problems, "\n"), raw)
	}
	if n := len(fills(t, dir)); n != 0 {
		t.Fatalf("%d fill files left after halt", n)
	}

	if code := a.stop(); code != 0 {
		t.Fatalf("agent exit %d; log:\n%s", code, a.log)
	}
}

// TestMetricsDryRun: a dry-run agent counts every fire as a skip (reason dry_run), injects
// nothing, and says so in the journal.
func TestMetricsDryRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := writeConfig(t, dir, fmt.Sprintf(`
agent: {listen: "%s"}
journal: {path: %s/j.db}
experiments:
  - {name: ok, schedule: "@every 1s", duration: 1h, fault: {type: disk, path: %s, size: 1MiB, reserve: 1MiB}}
`, addr, dir, dir))
	a := startAgent(t, dir, "-c", cfg, "--dry-run")
	cl := api.NewClient(filepath.Join(dir, "j.db.sock"))
	defer cl.Close()
	eventually(t, 15*time.Second, "two dry runs", func() bool {
		recs, _ := cl.List(journal.Filter{})
		return len(recs) >= 2
	})
	if _, err := cl.Halt(t.Context(), "enough"); err != nil {
		t.Fatal(err)
	}
	_, fams := scrape(t, addr)
	recs, err := cl.List(journal.Filter{Experiment: "ok"})
	if err != nil {
		t.Fatal(err)
	}
	dry := 0
	for _, r := range recs {
		if r.DryRun && r.Status == journal.Succeeded && r.Cleanup == journal.CleanupNone && strings.HasPrefix(r.Reason, "dry run: ") {
			dry++
		}
	}
	if dry != len(recs) {
		t.Fatalf("%d of %d runs are dry runs: %+v", dry, len(recs), recs)
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"chaos_injections_total", []string{"failure_type=disk", "status=skipped"}, float64(dry)},
		{"chaos_injections_total", []string{"failure_type=disk", "status=success"}, 0},
		{"chaos_skips_total", []string{"experiment=ok", "reason=dry_run"}, float64(dry)},
		{"chaos_runs_total", []string{"experiment=ok", "status=succeeded"}, float64(dry)},
		{"chaos_injection_active", []string{"failure_type=disk"}, 0},
	} {
		if got := metric(fams, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if n := len(fills(t, dir)); n != 0 {
		t.Fatalf("a dry run left %d fill files", n)
	}
	if code := a.stop(); code != 0 {
		t.Fatalf("agent exit %d; log:\n%s", code, a.log)
	}
}
