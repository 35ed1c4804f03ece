package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateToken: validation reads the token as the agent will, so a loose or short
// one fails `chaoscron validate` with file:line:key, like any other mistake. A token file
// that does not exist here is not an error: schedules are validated away from the host.
func TestValidateToken(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "0123456789abcdef\n", 0o600)
	loose := write("loose", "0123456789abcdef\n", 0o644)
	short := write("short", "ab\n", 0o600)
	for _, tc := range []struct {
		name, file, env string
		want            string // "" = valid; CFG stands for the config file
	}{
		{"good file", good, "", ""},
		{"missing file", filepath.Join(dir, "elsewhere"), "", ""},
		{"file readable by others", loose, "", "CFG:3:3: api.token_file: " + loose + " is accessible by group or others (mode 0644): chmod 600 it (in Kubernetes, defaultMode: 0400 on the secret volume)"},
		{"short token in the file", short, "", "CFG:3:3: api.token_file: the token in " + short + " is 2 bytes long; use at least 16 (for example `openssl rand -hex 16`)"},
		{"good variable", "", "0123456789abcdef", ""},
		{"short variable", "", "ab", "CHAOSCRON_TOKEN: api.token_env: the token in $CHAOSCRON_TOKEN is 2 bytes long; use at least 16 (for example `openssl rand -hex 16`)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CHAOSCRON_TOKEN", tc.env)
			yaml := "agent: {listen: off}\n"
			if tc.file != "" {
				yaml += fmt.Sprintf("api:\n  token_file: %s\n", tc.file)
			}
			cfgPath := filepath.Join(t.TempDir(), "cfg.yaml")
			if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(cfgPath, nil)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if want := strings.ReplaceAll(tc.want, "CFG", cfgPath); got != want {
				t.Fatalf("Load error:\n got %q\nwant %q", got, want)
			}
		})
	}
}
