package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/journal"
	"github.com/chaoscron/chaoscron/pkg/api"
)

// liveConfig is an agent that keeps a disk fill in place for an hour, so the test can look at
// the journal while the fault is active.
func liveConfig(t *testing.T, dir, extra string) string {
	t.Helper()
	return writeConfig(t, dir, fmt.Sprintf(`
agent: {listen: "off"}
journal: {path: %s/j.db}
experiments:
  - name: fill
    schedule: "@every 1s"
    duration: 1h
    fault: {type: disk, path: %s, size: 1MiB, reserve: 1MiB}
%s`, dir, dir, extra))
}

// TestJournalWhileAgentRuns: bbolt locks the journal while the agent runs; the journal
// commands then go through the agent's socket and print exactly what they print from the file.
func TestJournalWhileAgentRuns(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := liveConfig(t, dir, "")
	sock := filepath.Join(dir, "j.db.sock")

	// A socket left behind by an agent that was SIGKILLed: the next agent replaces it.
	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()

	a := startAgent(t, dir, "-c", cfg)
	eventually(t, 10*time.Second, "a fill file", func() bool { return len(fills(t, dir)) > 0 })

	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %s: %v, mode %v; want a socket with mode 0600", sock, err, fi.Mode())
	}

	// -c and --journal both find it.
	recs := listRuns(t, dir, "-c", cfg)
	if len(recs) != 1 || recs[0].Status != journal.Active || recs[0].Cleanup != journal.CleanupPending ||
		recs[0].Experiment != "fill" || len(recs[0].Undo) == 0 {
		t.Fatalf("journal list while the fault is active: %+v; want one active run with its undo", recs)
	}
	id := recs[0].ID
	if got := listRuns(t, dir, "--journal", filepath.Join(dir, "j.db"), "--status", "succeeded"); len(got) != 0 {
		t.Fatalf("--status succeeded while the only run is active: %+v", got)
	}

	out, errs, code := cli(t, dir, "journal", "show", fmt.Sprint(id), "-c", cfg)
	var rec journal.Record
	if code != 0 || json.Unmarshal([]byte(out), &rec) != nil || rec.ID != id || rec.Status != journal.Active {
		t.Fatalf("journal show %d: exit %d, %s%s", id, code, out, errs)
	}
	if _, errs, code := cli(t, dir, "journal", "show", "999", "-c", cfg); code != 1 || !strings.Contains(errs, "run 999: not found") {
		t.Fatalf("journal show 999: exit %d, %s", code, errs)
	}

	out, errs, code = cli(t, dir, "journal", "stats", "-o", "json", "-c", cfg)
	var st journal.Stats
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Runs != 1 || st.Open != 1 || st.FileBytes == 0 {
		t.Fatalf("journal stats: exit %d, %s%s", code, out, errs)
	}
	if out, errs, code = cli(t, dir, "journal", "stats", "-c", cfg); code != 0 || !strings.Contains(out, "open runs") {
		t.Fatalf("journal stats (table): exit %d, %s%s", code, out, errs)
	}

	out, errs, code = cli(t, dir, "journal", "export", "-c", cfg)
	if code != 0 {
		t.Fatalf("journal export: exit %d, %s", code, errs)
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	lines := 0
	for sc.Scan() {
		var r journal.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		lines++
	}
	if lines != 1 {
		t.Fatalf("export printed %d lines, want 1:\n%s", lines, out)
	}

	if code := a.stop(); code != 0 {
		t.Fatalf("agent exit %d; log:\n%s", code, a.log)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket still there after the agent stopped: %v", err)
	}
	// From the file again, now that it is free: the same run, closed.
	recs = listRuns(t, dir, "-c", cfg)
	if len(recs) != 1 || recs[0].ID != id || recs[0].Status != journal.Aborted || recs[0].Cleanup != journal.CleanupDone {
		t.Fatalf("after stop: %+v", recs)
	}
}

// TestHaltLive: a halt through the API while a disk fill is active removes the file at once,
// records the run as aborted with the reason, stops all firing, and survives a restart
// until resume.
func TestHaltLive(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := liveConfig(t, dir, "")
	a := startAgent(t, dir, "-c", cfg)
	eventually(t, 10*time.Second, "a fill file", func() bool { return len(fills(t, dir)) > 0 })

	cl := api.NewClient(filepath.Join(dir, "j.db.sock"))
	defer cl.Close()
	start := time.Now()
	hr, err := cl.Halt(t.Context(), "game day over")
	took := time.Since(start)
	if err != nil || !hr.Halted || hr.Ended != 1 {
		t.Fatalf("halt: %+v %v", hr, err)
	}
	if n := len(fills(t, dir)); n != 0 || took > time.Second {
		t.Fatalf("halt answered in %v with %d fill files left; want none within 1s", took, n)
	}
	t.Logf("halt with one active disk fill answered, fault reverted, in %v", took)
	recs := listRuns(t, dir, "-c", cfg)
	if len(recs) != 1 || recs[0].Status != journal.Aborted || recs[0].Cleanup != journal.CleanupDone ||
		!strings.Contains(recs[0].Reason, "game day over") {
		t.Fatalf("after halt: %+v", recs)
	}

	time.Sleep(1500 * time.Millisecond) // @every 1s: a tick or more, all refused
	if n := len(listRuns(t, dir, "-c", cfg)); n != 1 {
		t.Fatalf("%d runs after the halt, want still 1", n)
	}
	if code := a.stop(); code != 0 {
		t.Fatalf("agent exit %d; log:\n%s", code, a.log)
	}

	b := startAgent(t, dir, "-c", cfg)
	eventually(t, 10*time.Second, "the restarted agent's socket", func() bool {
		_, err := os.Stat(filepath.Join(dir, "j.db.sock"))
		return err == nil
	})
	time.Sleep(1500 * time.Millisecond)
	out, errs, code := cli(t, dir, "journal", "stats", "-o", "json", "-c", cfg)
	var st journal.Stats
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || !st.Halted || st.Runs != 1 {
		t.Fatalf("restarted agent: stats %s%s (exit %d); want halted with still 1 run", out, errs, code)
	}
	if !strings.Contains(b.log.String(), "halt switch is on") {
		t.Fatalf("restarted agent did not say it is halted; log:\n%s", b.log)
	}

	if out, errs, code := cli(t, dir, "resume", "-c", cfg); code != 0 || !strings.Contains(out, "halted: false") {
		t.Fatalf("chaoscron resume: exit %d, %s%s", code, out, errs)
	}
	eventually(t, 10*time.Second, "a fill after resume", func() bool { return len(fills(t, dir)) > 0 })
	if out, errs, code := cli(t, dir, "halt", "--reason", "again", "-c", cfg); code != 0 || !strings.Contains(out, "1 active runs ended") {
		t.Fatalf("chaoscron halt: exit %d, %s%s", code, out, errs)
	}
	if n := len(fills(t, dir)); n != 0 {
		t.Fatalf("chaoscron halt returned with %d fill files left", n)
	}
	if code := b.stop(); code != 0 {
		t.Fatalf("agent exit %d; log:\n%s", code, b.log)
	}
}

// TestJournalFromEnvironment is `kubectl exec … -- chaoscron journal list` in the agent's
// container: no flags, the config named by CHAOSCRON_CONFIG, the journal locked by the agent.
func TestJournalFromEnvironment(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := liveConfig(t, dir, "")
	a := startAgent(t, dir, "-c", cfg)
	eventually(t, 10*time.Second, "a fill file", func() bool { return len(fills(t, dir)) > 0 })
	c := exec.Command(bin, "journal", "list", "-o", "json")
	c.Dir = t.TempDir() // not where the journal is
	c.Env = append(os.Environ(), "CHAOSCRON_CONFIG="+cfg)
	out, err := c.Output()
	var recs []journal.Record
	if err != nil || json.Unmarshal(out, &recs) != nil || len(recs) != 1 || recs[0].Status != journal.Active {
		t.Fatalf("journal list with CHAOSCRON_CONFIG: %v, %s", err, out)
	}
	if code := a.stop(); code != 0 {
		t.Fatalf("agent exit %d; log:\n%s", code, a.log)
	}
}

// TestNetworkToken: with a token (api.token_file) the network listener serves the API;
// mutating calls without the token are refused and change nothing, with it they work.
func TestNetworkToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("tok-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cfg := writeConfig(t, dir, fmt.Sprintf(`
agent: {listen: "%s"}
journal: {path: %s/j.db}
api: {token_file: %s/token}
experiments:
  - {name: fill, schedule: "@every 1h", duration: 1h, fault: {type: disk, path: %s, size: 1MiB, reserve: 1MiB}}
`, addr, dir, dir, dir))
	a := startAgent(t, dir, "-c", cfg)
	post := func(path, token string) int {
		body := ""
		if path == "/v1/halt" {
			body = `{"reason":"net"}`
		}
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	eventually(t, 10*time.Second, "the agent to be ready", func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	for _, tok := range []string{"", "tok-12", "wrong"} {
		if code := post("/v1/halt", tok); code != http.StatusUnauthorized {
			t.Fatalf("halt with token %q: %d, want 401", tok, code)
		}
		if code := post("/v1/experiments/fill/fire", tok); code != http.StatusUnauthorized {
			t.Fatalf("fire with token %q: %d, want 401", tok, code)
		}
	}
	out, _, _ := cli(t, dir, "journal", "stats", "-o", "json", "-c", cfg)
	var st journal.Stats
	if json.Unmarshal([]byte(out), &st) != nil || st.Halted || st.Runs != 0 || len(fills(t, dir)) != 0 {
		t.Fatalf("refused calls changed the agent: %s", out)
	}
	if code := post("/v1/experiments/fill/fire", "tok-0123456789abcdef"); code != http.StatusCreated {
		t.Fatalf("fire with the token: %d", code)
	}
	if code := post("/v1/halt", "tok-0123456789abcdef"); code != http.StatusOK || len(fills(t, dir)) != 0 {
		t.Fatalf("halt with the token: %d, %d fill files", code, len(fills(t, dir)))
	}
	if code := a.stop(); code != 0 {
		t.Fatalf("agent exit %d; log:\n%s", code, a.log)
	}
}
