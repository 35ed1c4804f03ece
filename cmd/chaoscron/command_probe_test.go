package main

import (
	"strings"
	"testing"
	"time"
)

// TestProbe: the exec probe asks the agent over its socket, and fails (exit 1, saying why)
// when no agent answers there.
func TestProbe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "agent: {listen: \"off\"}\njournal: {path: "+dir+"/j.db}\nexperiments: []\n")

	for _, which := range []string{"ready", "live"} {
		out, errOut, code := cli(t, dir, "probe", which, "-c", cfg)
		if code != 1 || out != "" || !strings.Contains(errOut, "j.db.sock") {
			t.Errorf("probe %s, no agent: exit %d, stdout %q, stderr %q; want exit 1 naming the socket", which, code, out, errOut)
		}
	}
	if _, errOut, code := cli(t, dir, "probe", "sideways", "-c", cfg); code != 2 {
		t.Errorf("probe sideways: exit %d (%s), want 2 (usage)", code, errOut)
	}

	a := startAgent(t, dir, "-c", cfg)
	eventually(t, 20*time.Second, "probe ready to pass", func() bool {
		out, _, code := cli(t, dir, "probe", "ready", "--journal", dir+"/j.db")
		return code == 0 && out == "ok\n"
	})
	if out, errOut, code := cli(t, dir, "probe", "live", "-c", cfg); code != 0 || out != "ok\n" {
		t.Errorf("probe live, agent running: exit %d, %q %q", code, out, errOut)
	}
	if code := a.stop(); code != 0 {
		t.Fatalf("agent exited %d\n%s", code, a.log)
	}
	if _, _, code := cli(t, dir, "probe", "ready", "-c", cfg); code != 1 {
		t.Errorf("probe ready after the agent stopped: exit %d, want 1", code)
	}
}
