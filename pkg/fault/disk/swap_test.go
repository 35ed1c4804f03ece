package disk

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

// These tests move the fill's directory during the hold, the way a person or a program with
// write access to its parent could, and check that Revert never says the fill is gone while
// it is still there.

func TestDirectoryMovedDuringHold(t *testing.T) {
	for _, tc := range []struct {
		name string
		move func(t *testing.T, dir, moved string) // dir has been renamed to moved already
	}{
		{"renamed", func(*testing.T, string, string) {}},
		{"swapped for a symlink elsewhere", func(t *testing.T, dir, _ string) { symlink(t, t.TempDir(), dir) }},
		{"swapped for a symlink to where it went", func(t *testing.T, dir, moved string) { symlink(t, moved, dir) }},
		{"swapped for another directory", func(t *testing.T, dir, _ string) { mkdir(t, dir) }},
	} {
		for _, agent := range []string{"same agent", "fresh agent", "fresh agent without openat2"} {
			t.Run(tc.name+"/"+agent, func(t *testing.T) {
				parent := t.TempDir()
				dir, moved := filepath.Join(parent, "fill"), filepath.Join(parent, "moved")
				mkdir(t, dir)
				params := fault.Params{"path": dir, "size": size, "reserve": 0}
				f := newFault(t, params)
				_, raw := inject(t, f, "r1")
				if err := os.Rename(dir, moved); err != nil {
					t.Fatal(err)
				}
				tc.move(t, dir, moved)

				if agent == "same agent" {
					// The agent that holds the fill removes it wherever the directory went.
					revert(t, f, raw)
					if names := list(t, moved); len(names) != 0 {
						t.Fatalf("%s holds %v after Revert; want nothing", moved, names)
					}
					return
				}
				// A fresh agent, from the undo alone, cannot find the directory: it must say so.
				fresh := newFault(t, params)
				fresh.noOpenat2 = strings.HasSuffix(agent, "without openat2")
				err := fresh.Revert(t.Context(), raw)
				if !errors.Is(err, ErrLeftBehind) || !strings.Contains(err.Error(), "may still exist") {
					t.Fatalf("Revert from the undo alone = %v; want ErrLeftBehind", err)
				}
				t.Logf("%v", err)
				if !exists(t, filepath.Join(moved, ".chaoscron-fill-r1")) {
					t.Fatal("the fill is gone after a refused Revert")
				}
				revert(t, f, raw)
			})
		}
	}
}

// TestRevertProvesFillGone: a hard link made during the hold keeps the fill's blocks; Revert
// must not report it gone.
func TestRevertProvesFillGone(t *testing.T) {
	for _, fresh := range []bool{false, true} {
		t.Run(map[bool]string{false: "same agent", true: "fresh agent"}[fresh], func(t *testing.T) {
			dir := t.TempDir()
			params := fault.Params{"path": dir, "size": size, "reserve": 0}
			f := newFault(t, params)
			_, raw := inject(t, f, "r1")
			other := filepath.Join(dir, "kept")
			if err := os.Link(filepath.Join(dir, ".chaoscron-fill-r1"), other); err != nil {
				t.Fatal(err)
			}
			if fresh {
				f = newFault(t, params)
			}
			err := f.Revert(t.Context(), raw)
			if !errors.Is(err, ErrLeftBehind) || !strings.Contains(err.Error(), "1 link") {
				t.Fatalf("Revert = %v; want ErrLeftBehind saying a link is left", err)
			}
			t.Logf("%v", err)
			if names := list(t, dir); !slices.Equal(names, []string{"kept"}) {
				t.Fatalf("directory holds %v; want the fill's name removed and the other link kept", names)
			}
		})
	}
}

// TestConfiguredSymlink: a path that is a symlink at config time is the admin's own, and is
// followed once, at Plan; a symlink retargeted between Plan and Inject is not.
func TestConfiguredSymlink(t *testing.T) {
	parent := t.TempDir()
	real, link := filepath.Join(parent, "real"), filepath.Join(parent, "link")
	mkdir(t, real)
	symlink(t, "real", link)
	params := fault.Params{"path": link, "size": size, "reserve": 0}

	f := newFault(t, params)
	_, raw := inject(t, f, "r1")
	if u := decode(t, raw); u.File != filepath.Join(real, ".chaoscron-fill-r1") {
		t.Fatalf("undo file %s; want it in %s", u.File, real)
	}
	if err := newFault(t, params).Revert(t.Context(), raw); err != nil {
		t.Fatalf("Revert from the undo alone: %v", err)
	}
	if names := list(t, real); len(names) != 0 {
		t.Fatalf("%s holds %v after Revert; want nothing", real, names)
	}
	revert(t, f, raw) // the holder finds it gone: idempotent

	plan, err := f.Plan(t.Context(), "r2")
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(parent, "other")
	mkdir(t, other)
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	symlink(t, "other", link)
	if u, err := f.Inject(t.Context(), plan); err == nil {
		_ = f.Revert(t.Context(), u)
		t.Fatalf("Inject after the symlink was retargeted = %s; want an error", u)
	}
	if names := list(t, other); len(names) != 0 {
		t.Fatalf("%s holds %v; want nothing", other, names)
	}
	revert(t, f, plan)
}

// TestUndoOfEarlierVersion: an undo without dir_ino, as earlier versions wrote, is still
// reverted.
func TestUndoOfEarlierVersion(t *testing.T) {
	dir := t.TempDir()
	params := fault.Params{"path": dir, "size": size, "reserve": 0}
	_, raw := inject(t, newFault(t, params), "r1")
	u := decode(t, raw)
	u.DirIno = 0
	old := u.marshal()
	if strings.Contains(string(old), "dir_ino") {
		t.Fatalf("undo %s; want no dir_ino", old)
	}
	revert(t, newFault(t, params), old)
	if names := list(t, dir); len(names) != 0 {
		t.Fatalf("directory holds %v after Revert; want nothing", names)
	}
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, name string) {
	t.Helper()
	if err := os.Symlink(target, name); err != nil {
		t.Fatal(err)
	}
}
