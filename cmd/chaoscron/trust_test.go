package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/internal/testenv"
)

// TestForeignJournalRefused: a journal in a /tmp-like directory that another user owns
// (one they planted, halted) is refused by every command that would write it or obey
// it, with the reason; `journal list` still shows what is in it.
func TestForeignJournalRefused(t *testing.T) {
	testenv.Root(t) // chown to nobody
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	jpath := filepath.Join(dir, "j.db")
	if _, errs, code := cli(t, dir, "halt", "--journal", jpath, "--reason", "planted"); code != 0 {
		t.Fatalf("halt: exit %d: %s", code, errs)
	}
	if err := os.Chown(jpath, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, dir, fmt.Sprintf(`
agent: {listen: "off"}
journal: {path: %s}
experiments:
  - {name: burn, schedule: "@every 1h", duration: 1s, fault: {type: cpu}}
`, jpath))
	for _, args := range [][]string{
		{"resume", "--journal", jpath},
		{"recover", "--journal", jpath},
		{"journal", "prune", "--journal", jpath},
		{"fire", "-c", cfg, "burn"},
	} {
		t.Run(args[0], func(t *testing.T) {
			_, errs, code := cli(t, dir, args...)
			if code != 1 || !strings.Contains(errs, "refusing a journal another user can write: the file is owned by uid 65534") {
				t.Fatalf("exit %d (want 1), stderr: %s", code, errs)
			}
		})
	}
	// The agent itself, which would otherwise stay halted (and run) on the planted switch.
	a := startAgent(t, dir, "-c", cfg)
	if code := a.wait(10 * time.Second); code != 1 || !strings.Contains(a.log.String(), "the file is owned by uid 65534") {
		t.Fatalf("run: exit %d (want 1), log: %s", code, a.log)
	}
	out, errs, code := cli(t, dir, "journal", "list", "--journal", jpath)
	if code != 0 {
		t.Fatalf("journal list of the foreign journal: exit %d: %s %s", code, out, errs)
	}
}
