package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the .golden files of testdata/config/bad")

const badDir = "../../testdata/config/bad"

// TestBadConfigs parses every fixture in testdata/config/bad and compares all of its
// messages with the fixture's .golden file. The table pins, independently of the golden
// files (which -update rewrites), where the first problem of each fixture must be reported:
// "line:column path", so a regression in placement cannot be blessed by accident.
func TestBadConfigs(t *testing.T) {
	first := map[string]string{
		"abort-if.yaml":           "2:14 agent.abort_if.http",
		"bad-cron.yaml":           "3:5 experiments[0].schedule",
		"bad-name.yaml":           "2:5 experiments[0].name",
		"bad-protect.yaml":        "4:7 agent.protect[1]",
		"bad-timezone.yaml":       "2:3 agent.timezone",
		"bare-tz.yaml":            "3:5 experiments[0].schedule",
		"complex-key.yaml":        "2:5 ",
		"cpu-load.yaml":           "8:7 experiments[0].fault.load",
		"disk-percent.yaml":       "8:7 experiments[0].fault.percent",
		"duplicate-key.yaml":      "4:0 ",
		"duplicate-name.yaml":     "7:5 experiments[1].name",
		"huge-value.yaml":         "4:3 agent.timezone",
		"long-name.yaml":          "2:3 windows.wwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwww",
		"many-errors.yaml":        "2:3 agent.max_active",
		"missing-fault.yaml":      "2:5 experiments[0].fault",
		"negative-jitter.yaml":    "4:5 experiments[0].jitter",
		"probability.yaml":        "4:5 experiments[0].probability",
		"syntax-error.yaml":       "5:0 ",
		"too-long.yaml":           "6:5 experiments[0].duration",
		"top-level-list.yaml":     "1:1 ",
		"two-documents.yaml":      "3:1 ",
		"undefined-window.yaml":   "7:5 experiments[0].window",
		"unknown-fault-type.yaml": "6:7 experiments[0].fault.type",
		"unknown-key.yaml":        "7:5 experiments[0].probabilty",
		"window-duration.yaml":    "2:37 blackouts.freeze.duration",
		"wrong-type.yaml":         "4:5 experiments[0].duration",
		"zero-duration.yaml":      "4:5 experiments[0].duration",
	}
	files, err := filepath.Glob(filepath.Join(badDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 12 {
		t.Fatalf("found %d fixtures in %s, want at least 12", len(files), badDir)
	}
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := Parse(data, name, nil)
			if err == nil {
				t.Fatalf("Parse accepted a bad config: %+v", cfg)
			}
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error is %T, want a non-empty Errors: %v", err, err)
			}
			for _, e := range es {
				if e.File != name {
					t.Errorf("File = %q, want %q (%v)", e.File, name, e)
				}
				if e.Line == 0 {
					t.Errorf("no line for %v", e)
				}
			}
			want, ok := first[name]
			if !ok {
				t.Errorf("fixture %s has no entry in the table of first problems", name)
			} else if got := posKey(es[0]); got != want {
				t.Errorf("first problem at %q, want %q (%v)", got, want, es[0])
			}

			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			got := err.Error() + "\n"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			wantText, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(wantText) {
				t.Errorf("messages differ from %s\n--- got\n%s--- want\n%s", golden, got, wantText)
			}
		})
	}
}

func posKey(e *Error) string {
	return fmt.Sprintf("%d:%d %s", e.Line, e.Column, e.Path)
}
