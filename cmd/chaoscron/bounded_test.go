package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/journal"
)

// procKiB is a field of /proc/<pid>/status (VmRSS, VmHWM) in KiB.
func procKiB(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			var n int
			fmt.Sscan(strings.TrimSpace(v), &n)
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// bigJournal writes n closed runs of about 500 bytes each (a process fault's record with a
// target command line) to a new journal at path.
func bigJournal(t *testing.T, path string, n int) {
	t.Helper()
	j, err := journal.Open(path, journal.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	params := json.RawMessage(`{"action":"stop","cmdline":"^/usr/bin/app --db-host=db.internal --db-password=` +
		strings.Repeat("x", 200) + `","count":1}`)
	undo := json.RawMessage(`{"targets":[{"pid":4242,"start":123456789,"cmdline":"/usr/bin/app --serve"}]}`)
	now := time.Now().UTC()
	for i := range n {
		r := journal.Record{Experiment: fmt.Sprintf("exp-%d", i%20), Fault: "process", Params: params, Undo: undo,
			Trigger: "schedule", ScheduledAt: now, StartedAt: now, AppliedAt: now, EndedAt: now, PlannedEnd: now,
			Status: journal.Succeeded, Cleanup: journal.CleanupDone,
			Agent: journal.Agent{Host: "web-7d9f", PID: 4242, Instance: "3f9a2c1b", Version: "test"}}
		if err := j.Begin(&r); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBoundedResponses: an agent with a 10,000-run journal answers 100 concurrent GET
// /v1/runs (no limit) and 10 concurrent exports, on its network listener, with less than
// 30 MiB of resident memory added: runs come a page at a time, exports a batch at a time.
// Before pages, the same load added about 1.7 GB (every request held every run).
func TestBoundedResponses(t *testing.T) {
	t.Parallel()
	const runs = 10000
	dir := t.TempDir()
	bigJournal(t, filepath.Join(dir, "j.db"), runs)
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("tok-0123456789abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cfg := writeConfig(t, dir, fmt.Sprintf(`
agent: {listen: "%s"}
journal: {path: %s/j.db, max_runs: 20000}
api: {token_file: %s/token}
experiments:
  - {name: fill, schedule: "@every 1h", duration: 1h, fault: {type: disk, path: %s, size: 1MiB, reserve: 1MiB}}
`, addr, dir, dir, dir))
	a := startAgent(t, dir, "-c", cfg)
	pid := a.cmd.Process.Pid
	get := func(path string) (int, int64, error) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
		req.Header.Set("Authorization", "Bearer tok-0123456789abcdef")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, 0, err
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, n, err
	}
	eventually(t, 20*time.Second, "the agent to be ready", func() bool {
		code, _, _ := get("/readyz")
		return code == http.StatusOK
	})
	// One of each first, so that what is measured is the load, not first-use set-up.
	if code, _, err := get("/v1/runs"); code != http.StatusOK || err != nil {
		t.Fatalf("GET /v1/runs: %d %v", code, err)
	}
	if code, _, err := get("/v1/export"); code != http.StatusOK || err != nil {
		t.Fatalf("GET /v1/export: %d %v", code, err)
	}
	time.Sleep(200 * time.Millisecond)
	before := procKiB(t, pid, "VmRSS")

	var wg sync.WaitGroup
	errs := make(chan error, 110)
	for i := range 110 {
		wg.Go(func() {
			path := "/v1/runs"
			if i%11 == 0 {
				path = "/v1/export"
			}
			code, n, err := get(path)
			if err == nil && code != http.StatusOK {
				err = fmt.Errorf("%s: %d", path, code)
			}
			if err == nil && path == "/v1/export" && n < runs*400 {
				err = fmt.Errorf("export: only %d bytes", n)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	peak := procKiB(t, pid, "VmHWM")
	added := float64(peak-before) / 1024
	t.Logf("agent RSS %.1f MiB before, peak %.1f MiB under 100 GET /v1/runs + 10 exports: +%.1f MiB",
		float64(before)/1024, float64(peak)/1024, added)
	// Memory, unlike time, is no noise here; the margin is for the Go runtime's own
	// choices (when it collects, how much it keeps), not for the machine.
	if added >= 30 {
		t.Errorf("the load added %.1f MiB to the agent's RSS, want < 30", added)
	}

	// The export is still every run, oldest first, as JSON lines.
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/export", nil)
	req.Header.Set("Authorization", "Bearer tok-0123456789abcdef")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var n, last uint64
	for sc.Scan() {
		var r journal.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil || r.ID <= last {
			t.Fatalf("export line %d: %v, id %d after %d", n, err, r.ID, last)
		}
		n, last = n+1, r.ID
	}
	if n != runs {
		t.Fatalf("export: %d runs, want %d", n, runs)
	}
	if code := a.stop(); code != 0 {
		t.Fatalf("agent exit %d; log:\n%s", code, a.log)
	}
}
