package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chaoscron/chaoscron/internal/testenv"
	"github.com/chaoscron/chaoscron/pkg/config"
)

func TestAPIToken(t *testing.T) {
	testenv.Root(t) // a token file owned by another user
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		return p
	}
	file := write("token", "  from-file-0123456789\n", 0o600)
	readable := write("readable", "from-file-0123456789\n", 0o644)
	groupReadable := write("group", "from-file-0123456789\n", 0o640)
	short := write("short", "ab\n", 0o600)
	empty := write("empty", "\n", 0o600)
	huge := write("huge", strings.Repeat("x", 5000), 0o600)
	foreign := write("foreign", "from-file-0123456789\n", 0o600)
	if err := os.Chown(foreign, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CHAOSCRON_TOKEN", "from-default-env")
	t.Setenv("MY_TOKEN", "from-named-env-0123")
	t.Setenv("SHORT_TOKEN", "ab")
	for _, tc := range []struct {
		name    string
		api     config.API
		want    string
		wantErr string
	}{
		{"file wins", config.API{TokenFile: file, TokenEnv: "MY_TOKEN"}, "from-file-0123456789", ""},
		{"named variable", config.API{TokenEnv: "MY_TOKEN"}, "from-named-env-0123", ""},
		{"default variable", config.API{}, "from-default-env", ""},
		{"unset variable: no token", config.API{TokenEnv: "UNSET_TOKEN_VAR"}, "", ""},
		{"empty file", config.API{TokenFile: empty}, "", "is empty"},
		{"missing file", config.API{TokenFile: filepath.Join(dir, "nope")}, "", "no such file"},
		{"file readable by others", config.API{TokenFile: readable}, "", "accessible by group or others (mode 0644): chmod 600"},
		{"file readable by group", config.API{TokenFile: groupReadable}, "", "mode 0640"},
		{"file owned by another user", config.API{TokenFile: foreign}, "", "owned by uid 65534"},
		{"short token in the file", config.API{TokenFile: short}, "", "is 2 bytes long; use at least 16"},
		{"file far longer than a token", config.API{TokenFile: huge}, "", "longer than 4096 bytes"},
		{"a directory", config.API{TokenFile: dir}, "", "not a regular file"},
		{"short token in the variable", config.API{TokenEnv: "SHORT_TOKEN"}, "", "the token in $SHORT_TOKEN is 2 bytes long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := apiToken(&config.Config{API: tc.api})
			if got != tc.want || (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("apiToken = %q, %v; want %q, error saying %q", got, err, tc.want, tc.wantErr)
			}
		})
	}
}
