package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse: it must never panic, every failure must be an
// Errors list of messages, and everything it accepts must hold the invariants validation
// promises to the runner.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{badDir, goodDir} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add(demoYAML)
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("experiments:\n  - <<: {name: x}\n    fault: {type: cpu, <<: {load: 1}}\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, "fuzz.yaml", nil)
		if err != nil {
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error is not a non-empty Errors: %T %v", err, err)
			}
			for _, e := range es {
				if e.Msg == "" || e.File != "fuzz.yaml" {
					t.Fatalf("malformed error %#v", e)
				}
			}
			return
		}
		if cfg.Agent.MaxActive < 1 || cfg.Agent.MaxDuration <= 0 || cfg.Journal.MaxRuns < 0 || cfg.Location() == nil {
			t.Fatalf("accepted invalid agent or journal: %+v %+v", cfg.Agent, cfg.Journal)
		}
		names := map[string]bool{}
		for _, e := range cfg.Experiments {
			if !namePattern.MatchString(e.Name) || names[e.Name] {
				t.Fatalf("accepted bad or duplicate name %q", e.Name)
			}
			names[e.Name] = true
			if e.Duration <= 0 || e.Duration > cfg.Agent.MaxDuration || e.Jitter < 0 ||
				!(e.Probability >= 0 && e.Probability <= 1) || e.Fault.Type == "" || e.Fault.Params == nil {
				t.Fatalf("accepted invalid experiment %+v", e)
			}
			if e.Window != "" {
				if _, ok := cfg.Windows[e.Window]; !ok {
					t.Fatalf("accepted undefined window %q", e.Window)
				}
			}
		}
	})
}
