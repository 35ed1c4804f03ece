package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/chaoscron/chaoscron/pkg/config"
)

func TestAPIToken(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(file, []byte("  from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CHAOSCRON_TOKEN", "from-default-env")
	t.Setenv("MY_TOKEN", "from-named-env")
	for _, tc := range []struct {
		name    string
		api     config.API
		want    string
		wantErr bool
	}{
		{"file wins", config.API{TokenFile: file, TokenEnv: "MY_TOKEN"}, "from-file", false},
		{"named variable", config.API{TokenEnv: "MY_TOKEN"}, "from-named-env", false},
		{"default variable", config.API{}, "from-default-env", false},
		{"unset variable: no token", config.API{TokenEnv: "UNSET_TOKEN_VAR"}, "", false},
		{"empty file is an error", config.API{TokenFile: empty}, "", true},
		{"missing file is an error", config.API{TokenFile: filepath.Join(dir, "nope")}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := apiToken(&config.Config{API: tc.api})
			if got != tc.want || (err != nil) != tc.wantErr {
				t.Fatalf("apiToken = %q, %v; want %q, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}
