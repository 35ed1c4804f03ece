package disk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/chaoscron/chaoscron/internal/testenv"
	"github.com/chaoscron/chaoscron/pkg/fault"
)

// These tests fill real files in t.TempDir(), on whatever filesystem holds it (ext4 here).

// size is deliberately not a multiple of the write chunk or the block size.
const size = 8<<20 + 12345

// creation is the two ways a fill file can come to be.
var creation = []struct {
	name      string
	noTmpfile bool
}{{"tmpfile", false}, {"excl", true}}

func TestSizeFill(t *testing.T) {
	for _, method := range []string{"fallocate", "write"} {
		for _, c := range creation {
			t.Run(method+"/"+c.name, func(t *testing.T) {
				dir := t.TempDir()
				f := newFault(t, fault.Params{"path": dir, "size": size, "method": method})
				f.noTmpfile = c.noTmpfile
				_, raw := inject(t, f, "r1")
				u := decode(t, raw)
				file := filepath.Join(dir, ".chaoscron-fill-r1")
				if u.File != file || u.Bytes != size || u.Requested != size || u.Clamped || u.Method != method || !u.Xattr || u.Ino == 0 {
					t.Fatalf("undo = %+v; want file %s, %d bytes by %s, xattr and inode", u, file, size, method)
				}

				var st unix.Stat_t
				if err := unix.Lstat(file, &st); err != nil {
					t.Fatal(err)
				}
				if st.Size != size || st.Blocks*512 < size || st.Ino != u.Ino || st.Mode&0o777 != 0o600 {
					t.Fatalf("file: size %d, %d bytes allocated, inode %d, mode %o; want %d bytes allocated, inode %d, mode 600",
						st.Size, st.Blocks*512, st.Ino, st.Mode&0o777, size, u.Ino)
				}
				tag := make([]byte, 64)
				n, err := unix.Lgetxattr(file, runAttr, tag)
				if err != nil || string(tag[:n]) != "r1" {
					t.Fatalf("xattr %s = %q, %v; want r1", runAttr, tag[:n], err)
				}
				if method == "write" {
					checkIncompressible(t, file)
				}
				if names := list(t, dir); !slices.Equal(names, []string{".chaoscron-fill-r1"}) {
					t.Fatalf("directory holds %v; want the fill file only", names)
				}

				revert(t, f, raw)
				if exists(t, file) {
					t.Fatal("fill file still there after Revert")
				}
				revert(t, f, raw) // idempotent
			})
		}
	}
}

// checkIncompressible checks that the written data are neither zeros nor a repeated chunk.
func checkIncompressible(t *testing.T, file string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	first, second := data[:writeChunk], data[writeChunk:2*writeChunk]
	if bytes.Equal(first, second) {
		t.Fatal("two chunks hold the same data: deduplication would store one")
	}
	if zeros := bytes.Count(first, []byte{0}); zeros > writeChunk/100 {
		t.Fatalf("%d zero bytes in the first chunk; want random data", zeros)
	}
}

func TestFallocateFallback(t *testing.T) {
	for _, tc := range []struct {
		name      string
		fallocate func(fd int, mode uint32, off, n int64) error
	}{
		{"EOPNOTSUPP", func(int, uint32, int64, int64) error { return unix.EOPNOTSUPP }},
		// Succeeds without allocating anything, like fallocate on ZFS.
		{"allocates nothing", func(int, uint32, int64, int64) error { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			f := newFault(t, fault.Params{"path": dir, "size": size})
			f.fallocate = tc.fallocate
			_, raw := inject(t, f, "r1")
			if u := decode(t, raw); u.Method != "write" {
				t.Fatalf("method = %q; want the write fallback", u.Method)
			}
			var st unix.Stat_t
			if err := unix.Stat(filepath.Join(dir, ".chaoscron-fill-r1"), &st); err != nil {
				t.Fatal(err)
			}
			if st.Size != size || st.Blocks*512 < size {
				t.Fatalf("size %d, %d bytes allocated; want %d", st.Size, st.Blocks*512, size)
			}
		})
	}
}

func TestInjectNeverClobbers(t *testing.T) {
	for _, c := range creation {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			f := newFault(t, fault.Params{"path": dir, "size": size})
			f.noTmpfile = c.noTmpfile
			plan, err := f.Plan(t.Context(), "r1")
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(dir, ".chaoscron-fill-r1")
			if err := os.WriteFile(file, []byte("precious"), 0o644); err != nil {
				t.Fatal(err)
			}
			u, err := f.Inject(t.Context(), plan)
			if !errors.Is(err, unix.EEXIST) || u != nil {
				t.Fatalf("Inject over an existing file = %s, %v; want EEXIST and no undo", u, err)
			}
			if b, err := os.ReadFile(file); err != nil || string(b) != "precious" {
				t.Fatalf("existing file = %q, %v; want it untouched", b, err)
			}
			if names := list(t, dir); !slices.Equal(names, []string{".chaoscron-fill-r1"}) {
				t.Fatalf("directory holds %v; want only the file that was there", names)
			}
			// And Revert does not take it for ours either: the agent that failed to inject
			// knows it created nothing, and a fresh one, from the plan alone, cannot prove it.
			if err := f.Revert(t.Context(), plan); err != nil {
				t.Fatalf("Revert in the same process = %v; want nil (nothing was created)", err)
			}
			fresh := newFault(t, fault.Params{"path": dir, "size": size})
			if err := fresh.Revert(t.Context(), plan); !errors.Is(err, ErrNotOurs) {
				t.Fatalf("Revert in a fresh process = %v; want ErrNotOurs", err)
			}
			if b, err := os.ReadFile(file); err != nil || string(b) != "precious" {
				t.Fatalf("existing file = %q, %v after Revert; want it untouched", b, err)
			}
		})
	}
}

func TestInjectCleansUpOnError(t *testing.T) {
	for _, c := range creation {
		t.Run("cancelled write/"+c.name, func(t *testing.T) {
			dir := t.TempDir()
			f := newFault(t, fault.Params{"path": dir, "size": size, "method": "write"})
			f.noTmpfile = c.noTmpfile
			plan, err := f.Plan(t.Context(), "r1")
			if err != nil {
				t.Fatal(err)
			}
			// Cancelled after the first few chunks.
			u, err := f.Inject(cancelAfter(t.Context(), 4), plan)
			if !errors.Is(err, context.Canceled) || u != nil {
				t.Fatalf("Inject = %s, %v; want context.Canceled and no undo", u, err)
			}
			if names := list(t, dir); len(names) != 0 {
				t.Fatalf("directory holds %v after a failed Inject; want nothing", names)
			}
		})
		t.Run("no space/"+c.name, func(t *testing.T) {
			dir := t.TempDir()
			f := newFault(t, fault.Params{"path": dir, "size": size})
			f.noTmpfile = c.noTmpfile
			f.fallocate = func(int, uint32, int64, int64) error { return unix.ENOSPC }
			plan, err := f.Plan(t.Context(), "r1")
			if err != nil {
				t.Fatal(err)
			}
			if u, err := f.Inject(t.Context(), plan); !errors.Is(err, unix.ENOSPC) || u != nil {
				t.Fatalf("Inject = %s, %v; want ENOSPC and no undo", u, err)
			}
			if names := list(t, dir); len(names) != 0 {
				t.Fatalf("directory holds %v after a failed Inject; want nothing", names)
			}
		})
	}
}

// TestRevertInAnotherProcess is start-up recovery: a fresh Fault, built from the same params
// as the crashed agent's, gets nothing but the undo from the journal.
func TestRevertInAnotherProcess(t *testing.T) {
	for _, tc := range []struct {
		name     string
		withPlan bool // the agent died before Inject returned: the journal has only the plan
	}{{"undo from Inject", false}, {"plan only", true}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			params := fault.Params{"path": dir, "size": size}
			plan, undo := inject(t, newFault(t, params), "r1")
			if tc.withPlan {
				undo = plan
			}
			fresh, err := fault.New("disk", params, fault.Env{})
			if err != nil {
				t.Fatal(err)
			}
			if err := fresh.Revert(t.Context(), undo); err != nil {
				t.Fatal(err)
			}
			if names := list(t, dir); len(names) != 0 {
				t.Fatalf("directory holds %v after Revert; want nothing", names)
			}
		})
	}
}

func TestRevertLeavesOthersAlone(t *testing.T) {
	dir := t.TempDir()
	f := newFault(t, fault.Params{"path": dir, "size": 4096, "reserve": 0})
	_, mine := inject(t, f, "r1")
	_, other := inject(t, f, "r2")

	similar := []string{".chaoscron-fill-r10", ".chaoscron-fill-r1.bak", "chaoscron-fill-r1", ".chaoscron-fill-R1", ".chaoscron-fill-"}
	for _, name := range similar {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(name), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	revert(t, f, mine)
	want := append([]string{".chaoscron-fill-r2"}, similar...)
	slices.Sort(want)
	if got := list(t, dir); !slices.Equal(got, want) {
		t.Fatalf("after Revert of r1 the directory holds %v; want %v", got, want)
	}
	revert(t, f, other)
}

// TestRevertRefusesImpostors puts things that are not the fill at its exact name.
func TestRevertRefusesImpostors(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(t *testing.T, file string)
	}{
		{"untagged file", func(t *testing.T, file string) { writeFile(t, file) }},
		{"other run's file", func(t *testing.T, file string) {
			writeFile(t, file)
			if err := unix.Setxattr(file, runAttr, []byte("r2"), 0); err != nil {
				t.Fatal(err)
			}
		}},
		{"symlink to a tagged file", func(t *testing.T, file string) {
			target := filepath.Join(filepath.Dir(file), "target")
			writeFile(t, target)
			if err := unix.Setxattr(target, runAttr, []byte("r1"), 0); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, file); err != nil {
				t.Fatal(err)
			}
		}},
		{"directory", func(t *testing.T, file string) {
			if err := os.Mkdir(file, 0o700); err != nil {
				t.Fatal(err)
			}
		}},
		{"fifo", func(t *testing.T, file string) {
			if err := unix.Mkfifo(file, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			f := newFault(t, fault.Params{"path": dir, "size": size})
			plan, err := f.Plan(t.Context(), "r1")
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(dir, ".chaoscron-fill-r1")
			tc.make(t, file)
			before := list(t, dir)
			if err := f.Revert(t.Context(), plan); !errors.Is(err, ErrNotOurs) {
				t.Fatalf("Revert = %v; want ErrNotOurs", err)
			}
			if after := list(t, dir); !slices.Equal(before, after) || !exists(t, file) {
				t.Fatalf("directory went from %v to %v; want it untouched", before, after)
			}
		})
	}
}

// An agent killed between creating the file (without O_TMPFILE) and tagging it leaves an empty,
// untagged file at the run's name, recorded only by the plan: recovery removes it. Once the
// undo knows the inode, or the file holds data, an untagged file is refused as before.
func TestRevertRemovesFileLeftBeforeTagging(t *testing.T) {
	dir := t.TempDir()
	f := newFault(t, fault.Params{"path": dir, "size": size})
	plan, err := f.Plan(t.Context(), "r1")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, ".chaoscron-fill-r1")
	empty := func() {
		t.Helper()
		fd, err := unix.Open(file, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		_ = unix.Close(fd)
	}

	empty()
	if err := f.Revert(t.Context(), plan); err != nil {
		t.Fatalf("Revert of the plan with an empty untagged file at its name = %v; want it removed", err)
	}
	if exists(t, file) {
		t.Fatal("the empty file is still there")
	}

	var u undo
	if err := json.Unmarshal(plan, &u); err != nil {
		t.Fatal(err)
	}
	empty()
	u.Ino = 1 // an undo from after tagging: an untagged file at the name is not the fill
	if err := f.Revert(t.Context(), u.marshal()); !errors.Is(err, ErrNotOurs) {
		t.Fatalf("Revert with a known inode = %v; want ErrNotOurs", err)
	}
	if !exists(t, file) {
		t.Fatal("an untagged file was removed although the undo named another inode")
	}
}

// TestNoXattrs covers filesystems without user xattrs (vfat, some network filesystems). An
// attribute name outside every xattr namespace gets the same EOPNOTSUPP from the kernel, so
// the real system calls run down the same path.
func TestNoXattrs(t *testing.T) {
	const unsupported = "chaoscron.run" // no namespace prefix
	noXattrs := func(t *testing.T, dir string) *Fault {
		f := newFault(t, fault.Params{"path": dir, "size": size})
		f.attr = unsupported
		return f
	}
	t.Run("inject and revert", func(t *testing.T) {
		dir := t.TempDir()
		f := noXattrs(t, dir)
		plan, raw := inject(t, f, "r1")
		if u := decode(t, raw); u.Xattr {
			t.Fatalf("undo %+v claims an xattr", u)
		}
		// From the plan alone: the exact name and the device are the proof.
		revert(t, noXattrs(t, dir), plan)
		if names := list(t, dir); len(names) != 0 {
			t.Fatalf("directory holds %v after Revert; want nothing", names)
		}
	})
	t.Run("another inode", func(t *testing.T) {
		dir := t.TempDir()
		f := noXattrs(t, dir)
		_, raw := inject(t, f, "r1")
		file := filepath.Join(dir, ".chaoscron-fill-r1")
		// Someone removed the fill and put their own file there.
		if err := os.Remove(file); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "hold-the-inode")) // so the new file cannot reuse it
		writeFile(t, file)
		// From the undo alone (a fresh agent), the inode is the proof.
		if err := noXattrs(t, dir).Revert(t.Context(), raw); !errors.Is(err, ErrNotOurs) {
			t.Fatalf("Revert = %v; want ErrNotOurs", err)
		}
		// The agent that holds the fill knows it is gone, and leaves the other file alone.
		revert(t, f, raw)
		if !exists(t, file) {
			t.Fatal("Revert removed a file that is not the fill")
		}
	})
	t.Run("another device", func(t *testing.T) {
		dir := t.TempDir()
		f := noXattrs(t, dir)
		plan, _ := inject(t, f, "r1")
		u := decode(t, plan)
		u.Dev++
		// A fresh agent refuses the directory, which is not on the recorded device...
		if err := noXattrs(t, dir).Revert(t.Context(), u.marshal()); !errors.Is(err, ErrLeftBehind) {
			t.Fatalf("Revert = %v; want ErrLeftBehind", err)
		}
		// ...and with an undo of an earlier version (no dir_ino), the file.
		u.DirIno = 0
		if err := noXattrs(t, dir).Revert(t.Context(), u.marshal()); !errors.Is(err, ErrNotOurs) {
			t.Fatalf("Revert = %v; want ErrNotOurs", err)
		}
		revert(t, f, plan)
	})
}

func writeFile(t *testing.T, file string) {
	t.Helper()
	if err := os.WriteFile(file, []byte("not a fill"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// cancelAfter returns a context whose Err reports cancellation from its n+1st call on: a
// deterministic way to cancel in the middle of a fill.
func cancelAfter(parent context.Context, n int32) context.Context {
	c := &countdown{Context: parent}
	c.n.Store(n)
	return c
}

type countdown struct {
	context.Context
	n atomic.Int32
}

func (c *countdown) Err() error {
	if c.n.Add(-1) < 0 {
		return context.Canceled
	}
	return c.Context.Err()
}

// TestLinkViaProc covers how an agent without CAP_DAC_READ_SEARCH names its O_TMPFILE file.
func TestLinkViaProc(t *testing.T) {
	dir := t.TempDir()
	fd, err := unix.Open(dir, unix.O_RDWR|unix.O_TMPFILE|unix.O_CLOEXEC, 0o600)
	testenv.Require(t, err == nil, "O_TMPFILE on the filesystem of t.TempDir()")
	defer unix.Close(fd)
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dfd)
	file := filepath.Join(dir, "named")
	if err := linkViaProc(fd, dfd, "named"); err != nil {
		t.Fatal(err)
	}
	var a, b unix.Stat_t
	if err := unix.Fstat(fd, &a); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(file, &b); err != nil {
		t.Fatal(err)
	}
	if a.Ino != b.Ino {
		t.Fatalf("%s is inode %d; want the tmpfile's %d", file, b.Ino, a.Ino)
	}
	if err := linkViaProc(fd, dfd, "named"); !errors.Is(err, unix.EEXIST) {
		t.Fatalf("second link = %v; want EEXIST (never replace a name)", err)
	}
}
