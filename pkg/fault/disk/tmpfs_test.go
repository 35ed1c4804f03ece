package disk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/chaoscron/chaoscron/internal/testenv"
	"github.com/chaoscron/chaoscron/pkg/fault"
)

// These tests need a filesystem of their own, whose free space nothing else changes: a small
// tmpfs (it supports fallocate, O_TMPFILE and user xattrs), which takes root to mount.

const fsSize = 64 << 20

func tmpfs(t *testing.T) string {
	t.Helper()
	return tmpfsOf(t, fsSize)
}

// tmpfsOf mounts a tmpfs of size bytes on a new temporary directory.
func tmpfsOf(t *testing.T, size int) string {
	t.Helper()
	testenv.Root(t)
	dir := t.TempDir()
	if err := unix.Mount("chaoscron-test", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	// Registered after t.TempDir, so it runs before the directory is removed, and after the
	// reverts that inject registers later.
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
			_ = unix.Unmount(dir, unix.MNT_DETACH)
		}
	})
	return dir
}

// occupy puts n bytes of someone else's data on the filesystem.
func occupy(t *testing.T, dir string, n int) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "someone-else"), make([]byte, n), 0o600); err != nil {
		t.Fatal(err)
	}
}

func used(t *testing.T, dir string) float64 {
	total, avail := statfs(t, dir)
	return 100 * (1 - float64(avail)/float64(total))
}

func TestPercentFill(t *testing.T) {
	for _, method := range []string{"fallocate", "write"} {
		for _, before := range []int{0, 10 << 20} {
			t.Run(fmt.Sprintf("%s/%dMiB used before", method, before>>20), func(t *testing.T) {
				dir := tmpfs(t)
				occupy(t, dir, before)
				f := newFault(t, fault.Params{"path": dir, "percent": 50, "reserve": 0, "method": method})
				_, raw := inject(t, f, "r1")
				got := used(t, dir)
				t.Logf("%.2f%% used after the fill (undo %s)", got, raw)
				if got < 48 || got > 52 {
					t.Fatalf("%.2f%% used; want 50±2%%", got)
				}
				revert(t, f, raw)
				if got := used(t, dir); got > 100*float64(before+1<<20)/fsSize {
					t.Fatalf("%.2f%% still used after Revert", got)
				}
			})
		}
	}
}

func TestFreeSpaceDrops(t *testing.T) {
	for _, method := range []string{"fallocate", "write"} {
		t.Run(method, func(t *testing.T) {
			dir := tmpfs(t)
			_, avail0 := statfs(t, dir)
			f := newFault(t, fault.Params{"path": dir, "size": size, "reserve": 0, "method": method})
			_, raw := inject(t, f, "r1")
			_, avail1 := statfs(t, dir)
			drop := avail0 - avail1
			t.Logf("available dropped by %d bytes for a %d-byte fill", drop, size)
			if drop < size || drop > size+1<<20 {
				t.Fatalf("available dropped by %d; want %d (+ at most 1MiB of blocks and metadata)", drop, size)
			}
			revert(t, f, raw)
			if _, avail2 := statfs(t, dir); avail2 != avail0 {
				t.Fatalf("available is %d after Revert; want %d as before", avail2, avail0)
			}
		})
	}
}

func TestReserve(t *testing.T) {
	for _, tc := range []struct {
		name    string
		params  fault.Params
		reserve int64
	}{
		{"size beyond the filesystem", fault.Params{"size": "1GiB", "reserve": "16MiB"}, 16 << 20},
		{"percent 100", fault.Params{"percent": 100, "reserve": "8MiB"}, 8 << 20},
		{"size into the reserve", fault.Params{"size": "40MiB", "reserve": "32MiB"}, 32 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tmpfs(t)
			tc.params["path"] = dir
			f := newFault(t, tc.params)
			_, raw := inject(t, f, "r1")
			u := decode(t, raw)
			if !u.Clamped || u.Bytes >= u.Requested {
				t.Fatalf("undo %+v; want it clamped", u)
			}
			_, avail := statfs(t, dir)
			t.Logf("%d bytes available after the fill, reserve %d", avail, tc.reserve)
			if avail < tc.reserve || avail > tc.reserve+1<<20 {
				t.Fatalf("%d bytes available; want the reserve of %d (+ at most 1MiB)", avail, tc.reserve)
			}
		})
	}
}

func TestNothingToFill(t *testing.T) {
	for _, tc := range []struct {
		name   string
		params fault.Params
		before int
	}{
		{"reserve larger than the filesystem", fault.Params{"size": "1MiB"}, 0}, // default reserve 64MiB
		{"already fuller than percent", fault.Params{"percent": 10, "reserve": 0}, 16 << 20},
		{"full up to the reserve", fault.Params{"size": "1MiB", "reserve": "48MiB"}, 16 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tmpfs(t)
			occupy(t, dir, tc.before)
			tc.params["path"] = dir
			f := newFault(t, tc.params)
			if u, err := f.Plan(t.Context(), "r1"); !errors.Is(err, fault.ErrSkip) {
				t.Fatalf("Plan = %s, %v; want fault.ErrSkip", u, err)
			}
		})
	}
}

// TestInjectUsesSpaceOfNow: free space may shrink between Plan and Inject; the reserve must
// hold at the moment of filling.
func TestInjectUsesSpaceOfNow(t *testing.T) {
	dir := tmpfs(t)
	f := newFault(t, fault.Params{"path": dir, "size": "48MiB", "reserve": "8MiB"})
	plan, err := f.Plan(t.Context(), "r1")
	if err != nil {
		t.Fatal(err)
	}
	if u := decode(t, plan); u.Clamped || u.Bytes != 48<<20 {
		t.Fatalf("plan %+v; want 48MiB unclamped", u)
	}
	t.Cleanup(func() { _ = f.Revert(context.Background(), plan) })
	occupy(t, dir, 16<<20)
	raw, err := f.Inject(t.Context(), plan)
	if err != nil {
		t.Fatal(err)
	}
	if u := decode(t, raw); !u.Clamped || u.Bytes > 40<<20 {
		t.Fatalf("undo %+v; want it clamped to at most 40MiB", u)
	}
	if _, avail := statfs(t, dir); avail < 8<<20 {
		t.Fatalf("%d bytes available; want at least the 8MiB reserve", avail)
	}
}
