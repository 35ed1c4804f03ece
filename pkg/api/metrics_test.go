package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/internal/testenv"
	"github.com/chaoscron/chaoscron/pkg/runner"
)

// metricsYAML gives the outcomes a series each: success (ok), failed (bad: a missing
// directory fails at plan); busyAgent adds a skip (a tick while halted).
const metricsYAML = `
agent: {max_active: 5, listen: "off", seed: 7}
experiments:
  - {name: ok, schedule: "@every 1h", duration: 50ms, fault: {type: disk, path: DIR, size: 1MiB, reserve: 1MiB}}
  - {name: bad, schedule: "@every 1h", duration: 50ms, fault: {type: disk, path: DIR/missing, size: 1MiB}}
`

// busyAgent is a real runner that has run, failed and skipped, with its metrics served on
// a real 127.0.0.1 listener.
func busyAgent(t *testing.T) (*agent, *httptest.Server) {
	a := newAgentYAML(t, metricsYAML)
	for _, name := range []string{"ok", "bad", "ok"} {
		_, _ = a.r.Fire(t.Context(), name, runner.TriggerFire, time.Time{})
		a.r.Wait()
	}
	// A tick while halted is a skip.
	if _, err := a.r.Halt("metrics"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.r.Fire(t.Context(), "ok", runner.TriggerSchedule, time.Time{}); !runner.IsSkip(err) {
		t.Fatalf("fire while halted: %v, want a skip", err)
	}
	a.r.UpdateJournalSize()
	srv := httptest.NewServer(a.noToken)
	t.Cleanup(srv.Close)
	return a, srv
}

func get(t *testing.T, u string) []byte {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", u, resp.StatusCode, err)
	}
	return b
}

// TestPromtoolCheckMetrics: the real exposition, after real runs of every outcome, passes
// promtool's lint.
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool := testenv.Tool(t, "promtool")
	a, srv := busyAgent(t)
	raw := get(t, srv.URL+"/metrics")
	for _, want := range []string{
		`chaos_injections_total{failure_type="disk",status="success"} 2`,
		`chaos_injections_total{failure_type="disk",status="failed"} 1`,
		`chaos_injections_total{failure_type="disk",status="skipped"} 1`,
		`chaos_skips_total{experiment="ok",reason="halted"} 1`,
		`chaos_runs_total{experiment="bad",status="failed"} 1`,
		`chaos_runs_total{experiment="ok",status="succeeded"} 2`,
		`chaos_reverts_total{failure_type="disk",result="ok"} 2`,
		`chaos_injection_duration_seconds_count{failure_type="disk"} 2`,
		`chaos_injection_active{failure_type="disk"} 0`,
		"chaos_agent_halted 1",
		"chaos_journal_open_runs 0",
	} {
		if !bytes.Contains(raw, []byte(want+"\n")) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	m := regexp.MustCompile(`(?m)^chaos_journal_size_bytes (\S+)$`).FindSubmatch(raw)
	fi, err := os.Stat(a.j.Path())
	if m == nil || err != nil || string(m[1]) != strconv.FormatInt(fi.Size(), 10) && string(m[1]) != fmt.Sprintf("%g", float64(fi.Size())) {
		t.Errorf("chaos_journal_size_bytes = %q, the file has %v bytes (%v)", m, fi.Size(), err)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(raw)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestPrometheusScrapes starts a real Prometheus that scrapes the agent every second and
// reads the agent's metrics back through its query API.
func TestPrometheusScrapes(t *testing.T) {
	prom := testenv.Tool(t, "prometheus")
	_, srv := busyAgent(t)
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	promAddr := ln.Addr().String()
	ln.Close()
	cfg := filepath.Join(dir, "prometheus.yml")
	target := srv.Listener.Addr().String()
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: chaoscron
    static_configs: [{targets: [%q]}]
`, target)), 0o600); err != nil {
		t.Fatal(err)
	}
	var plog testenv.Buffer
	p := exec.Command(prom, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	p.Stdout, p.Stderr = &plog, &plog
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = p.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = p.Process.Kill()
		<-exited
	})

	query := func(q string) (float64, bool) {
		resp, err := http.Get("http://" + promAddr + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return 0, false
		}
		defer resp.Body.Close()
		var body struct {
			Status string
			Data   struct{ Result []struct{ Value [2]any } }
		}
		if json.NewDecoder(resp.Body).Decode(&body) != nil || body.Status != "success" || len(body.Data.Result) != 1 {
			return 0, false
		}
		s, _ := body.Data.Result[0].Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		return v, err == nil
	}
	start := time.Now()
	deadline := start.Add(45 * time.Second)
	for {
		up, ok1 := query(`up{job="chaoscron"}`)
		inj, ok2 := query(`chaos_injections_total{job="chaoscron",failure_type="disk",status="success"}`)
		if ok1 && ok2 && up == 1 && inj == 2 {
			t.Logf("Prometheus read up == 1 and chaos_injections_total == 2 back after %v", time.Since(start).Round(100*time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus never saw the agent: up=%v (%v), injections=%v (%v); log:\n%s", up, ok1, inj, ok2, plog.String())
		}
		select {
		case <-exited:
			t.Fatalf("prometheus exited; log:\n%s", plog.String())
		case <-time.After(250 * time.Millisecond):
		}
	}
}
