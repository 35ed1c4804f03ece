package journal

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chaoscron/chaoscron/internal/testenv"
)

const nobody = 65534

// TestOpenRefusesForeignJournal: a writable Open refuses a journal, or a journal
// directory, that another user could have written, as sshd's StrictModes does; a
// read-only Open (inspection) still reads it. Real files, real modes, real owners.
func TestOpenRefusesForeignJournal(t *testing.T) {
	testenv.Root(t) // chown to another user
	// made builds a halted journal at dir/journal.db, then lets the case spoil it.
	made := func(t *testing.T, dir string) string {
		t.Helper()
		path := filepath.Join(dir, "journal.db")
		j, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := j.SetHalted(true, "planted", t0); err != nil {
			t.Fatal(err)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string) string // returns the path to open
		want  string                                // "" = accepted; DIR stands for the directory
	}{
		{"ours, fresh", func(t *testing.T, dir string) string { return filepath.Join(dir, "journal.db") }, ""},
		{"ours, existing", made, ""},
		{"file owned by nobody", func(t *testing.T, dir string) string {
			p := made(t, dir)
			must(t, os.Chown(p, nobody, nobody))
			return p
		}, "the file is owned by uid 65534"},
		{"file writable by others", func(t *testing.T, dir string) string {
			p := made(t, dir)
			must(t, os.Chmod(p, 0o666))
			return p
		}, "writable by group or others (mode 0666)"},
		{"file writable by a shared group", func(t *testing.T, dir string) string {
			p := made(t, dir)
			must(t, os.Chown(p, -1, nobody)) // nogroup: nobody's group, not ours alone
			must(t, os.Chmod(p, 0o620))
			return p
		}, "mode 0620"},
		{"directory writable by the owner's private group (umask 002)", func(t *testing.T, dir string) string {
			testenv.Require(t, systemPrivateGroup(0, 0), "root's primary group is its own alone here")
			must(t, os.Chown(dir, 0, 0))
			must(t, os.Chmod(dir, 0o775))
			return made(t, dir)
		}, ""},
		{"directory writable by a shared group", func(t *testing.T, dir string) string {
			p := made(t, dir)
			must(t, os.Chown(dir, 0, nobody))
			must(t, os.Chmod(dir, 0o770))
			return p
		}, "mode 0770"},
		{"directory owned by nobody", func(t *testing.T, dir string) string {
			p := made(t, dir)
			must(t, os.Chown(dir, nobody, nobody))
			return p
		}, "its directory DIR is owned by uid 65534"},
		{"directory writable by all, no sticky bit", func(t *testing.T, dir string) string {
			p := made(t, dir)
			must(t, os.Chmod(dir, 0o777))
			return p
		}, "writable by group or others (mode 0777)"},
		{"directory writable by all with the sticky bit, like /tmp", func(t *testing.T, dir string) string {
			must(t, os.Chmod(dir, 0o777|os.ModeSticky))
			return made(t, dir)
		}, ""},
		{"nobody's file in a sticky directory", func(t *testing.T, dir string) string {
			must(t, os.Chmod(dir, 0o777|os.ModeSticky))
			p := made(t, dir)
			must(t, os.Chown(p, nobody, nobody))
			return p
		}, "is owned by uid 65534"},
		{"symlink to a journal in a directory writable by all", func(t *testing.T, dir string) string {
			other := filepath.Join(dir, "other")
			must(t, os.Mkdir(other, 0o700))
			p := made(t, other)
			must(t, os.Chmod(other, 0o777))
			link := filepath.Join(dir, "link.db")
			must(t, os.Symlink(p, link))
			return link
		}, "its directory DIR/other is writable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "j")
			must(t, os.Mkdir(dir, 0o700))
			path := tc.setup(t, dir)
			j, err := Open(path, Options{})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Open refused a journal only we can write: %v", err)
				}
				must(t, j.Close())
				fi, err := os.Stat(path)
				must(t, err)
				if fi.Mode().Perm() != 0o600 {
					t.Errorf("journal mode %04o, want 0600", fi.Mode().Perm())
				}
				return
			}
			if j != nil {
				_ = j.Close()
			}
			want := strings.ReplaceAll(tc.want, "DIR", dir)
			if !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), want) {
				t.Fatalf("Open = %v; want ErrUntrusted saying %q", err, want)
			}
			// Inspection still works: reading obeys nothing.
			ro, err := Open(path, Options{ReadOnly: true})
			if err != nil {
				t.Fatalf("read-only Open: %v", err)
			}
			halted, reason, _, err := ro.Halted()
			_ = ro.Close()
			if err != nil || !halted || reason != "planted" {
				t.Errorf("read-only Halted = %v %q %v", halted, reason, err)
			}
		})
	}
}

// TestOpenCreatesNothingInForeignDirectory: a writable Open of a journal that does not
// exist yet, in a directory others can write, refuses before it creates anything there.
func TestOpenCreatesNothingInForeignDirectory(t *testing.T) {
	dir := t.TempDir()
	must(t, os.Chmod(dir, 0o777))
	_, err := Open(filepath.Join(dir, "journal.db"), Options{})
	if !errors.Is(err, ErrUntrusted) {
		t.Fatalf("Open in a directory writable by all = %v, want ErrUntrusted", err)
	}
	entries, err := os.ReadDir(dir)
	must(t, err)
	if len(entries) != 0 {
		t.Errorf("Open left %d entries in the refused directory: %v", len(entries), entries[0].Name())
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
