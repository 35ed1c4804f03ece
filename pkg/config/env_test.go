package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// These tests set process environment variables, so none of them runs in parallel.

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "chaoscron.yaml")
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestPrecedence: defaults < file < environment < overrides, key by key.
func TestPrecedence(t *testing.T) {
	file := writeConfig(t, `
agent:
  dry_run: false
  max_active: 3
  listen: ":9000"
  seed: 1
journal:
  path: /from/file.db
  max_age: 24h
`)
	t.Setenv("CHAOSCRON_AGENT__DRY_RUN", "true")
	t.Setenv("CHAOSCRON_AGENT__MAX_ACTIVE", "5")
	t.Setenv("CHAOSCRON_JOURNAL__PATH", "/from/env.db")
	t.Setenv("CHAOSCRON_JOURNAL__MAX_AGE", "48h")
	t.Setenv("CHAOSCRON_JOURNAL__RECORD_SKIPS", "1")
	t.Setenv("CHAOSCRON_TOKEN", "secret-0123456789") // the API token, not a config key: ignored

	cfg, err := Load(file, map[string]any{
		"agent.max_active": 7,
		"journal.path":     "/from/flag.db",
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"agent.timezone (default)", cfg.Agent.Timezone, "UTC"},
		{"agent.listen (file over default)", cfg.Agent.Listen, ":9000"},
		{"agent.seed (file)", cfg.Agent.Seed, uint64(1)},
		{"agent.dry_run (env over file)", cfg.Agent.DryRun, true},
		{"journal.max_age (env over file)", cfg.Journal.MaxAge, 48 * time.Hour},
		{"journal.record_skips (env over default)", cfg.Journal.RecordSkips, true},
		{"agent.max_active (override over env and file)", cfg.Agent.MaxActive, 7},
		{"journal.path (override over env and file)", cfg.Journal.Path, "/from/flag.db"},
		{"journal.max_runs (default)", cfg.Journal.MaxRuns, DefaultMaxRuns},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

// TestParseIgnoresEnv: Parse is for in-memory YAML only.
func TestParseIgnoresEnv(t *testing.T) {
	t.Setenv("CHAOSCRON_AGENT__DRY_RUN", "true")
	cfg, err := Parse([]byte("agent: {dry_run: false}\n"), "x.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Agent.DryRun {
		t.Error("Parse read the environment")
	}
}

// TestEnvStrings: every scalar type decodes from the strings the environment holds.
func TestEnvStrings(t *testing.T) {
	t.Setenv("CHAOSCRON_AGENT__SEED", "18446744073709551615")
	t.Setenv("CHAOSCRON_AGENT__MAX_DURATION", "90m")
	t.Setenv("CHAOSCRON_AGENT__PROTECT", "pause|envoy")
	t.Setenv("CHAOSCRON_AGENT__LISTEN", "")
	t.Setenv("CHAOSCRON_JOURNAL__MAX_RUNS", "0")
	t.Setenv("CHAOSCRON_WINDOWS__NIGHTS__SCHEDULE", "0 22 * * *")
	t.Setenv("CHAOSCRON_WINDOWS__NIGHTS__DURATION", "6h")
	cfg, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Agent.Seed != 18446744073709551615 || cfg.Agent.MaxDuration != 90*time.Minute ||
		len(cfg.Agent.Protect) != 1 || cfg.Agent.Protect[0] != "pause|envoy" ||
		cfg.Agent.ListenEnabled() || cfg.Journal.MaxRuns != 0 ||
		cfg.Windows["nights"] != (Window{Schedule: "0 22 * * *", Duration: 6 * time.Hour}) {
		t.Errorf("got %+v %+v %+v", cfg.Agent, cfg.Journal, cfg.Windows)
	}
}

// TestOverrideTypes: overrides may carry typed values from flags as well as strings.
func TestOverrideTypes(t *testing.T) {
	cfg, err := Parse(nil, "x.yaml", map[string]any{
		"agent.dry_run":      true,
		"agent.seed":         uint64(9),
		"agent.max_duration": 10 * time.Minute,
		"journal.max_runs":   "3",
		"agent.listen":       "off",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Agent.DryRun || cfg.Agent.Seed != 9 || cfg.Agent.MaxDuration != 10*time.Minute ||
		cfg.Journal.MaxRuns != 3 || cfg.Agent.ListenEnabled() {
		t.Errorf("got %+v %+v", cfg.Agent, cfg.Journal)
	}
}

// TestLayerErrors: a bad value from the environment or the command line is reported against
// the variable or the command line, not against a line of the file it replaced.
func TestLayerErrors(t *testing.T) {
	file := writeConfig(t, "agent:\n  max_active: 2\n  dry_run: true\n")
	t.Setenv("CHAOSCRON_AGENT__MAX_ACTIVE", "zero")
	t.Setenv("CHAOSCRON_AGENT__DRY_RN", "true")
	t.Setenv("CHAOSCRON_EXPERIMENTS__0__NAME", "x")
	t.Setenv("CHAOSCRON_WINDOWS__NIGHTS__SCHEDULE", "0 22 * * *")
	_, err := Load(file, map[string]any{"journal.max_runs": -5, "agent.dry_run": "perhaps"})
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("err = %v", err)
	}
	want := []string{
		`CHAOSCRON_AGENT__DRY_RN: agent.dry_rn: unknown key, did you mean dry_run?`,
		`CHAOSCRON_AGENT__MAX_ACTIVE: agent.max_active: expected a whole number, got "zero"`,
		`command line: agent.dry_run: expected true or false, got "perhaps"`,
		`CHAOSCRON_EXPERIMENTS__0__NAME: experiments: expected a list, got a mapping`,
		`command line: journal.max_runs: must be 0 (unbounded) or more, got -5`,
		`CHAOSCRON_WINDOWS__NIGHTS__SCHEDULE: windows.nights.duration: missing: how long the window stays open, like 45s or 8h`,
	}
	got := strings.Split(err.Error(), "\n")
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, e := range es {
		if e.Line != 0 {
			t.Errorf("%v has a line, but its value did not come from the file", e)
		}
	}
}
