// Package netns opens a network namespace by path, for the faults that work inside one: the
// network fault's netlink sockets are opened in it (by file descriptor), and the http fault's
// proxy listens and dials there and its nftables table lives there (Do).
package netns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// ErrGone means the namespace no longer exists: no path leads to it and no process is in it.
// Whatever was in it (qdiscs, an nftables table) went with it, so there is nothing to revert.
var ErrGone = errors.New("network namespace no longer exists")

// NS is an open network namespace: the caller's own (no file: no setns needed, so a fault
// acting there only needs CAP_NET_ADMIN) or another held open by file.
type NS struct {
	Path  string // as configured; "" for the agent's own
	Inode uint64
	file  *os.File // nil for the agent's own
}

// FD is the namespace's file descriptor for netlink, 0 for the caller's own.
func (n *NS) FD() int {
	if n.file == nil {
		return 0
	}
	return int(n.file.Fd())
}

// Close releases the namespace.
func (n *NS) Close() error {
	if n.file == nil {
		return nil
	}
	return n.file.Close()
}

// String names the namespace in messages.
func (n *NS) String() string { return Name(n.Path) }

// Name names the namespace at path in messages ("" for the agent's own), for a caller that
// has a path but could not open it.
func Name(path string) string {
	if path == "" {
		return "the agent's network namespace"
	}
	return path
}

// Open opens the namespace at path ("" for the caller's own). With want == 0 (planning) the
// path must lead to a network namespace. With want != 0 (injecting, reverting, sweeping) the
// namespace must be the one with that inode: when the path leads elsewhere (a reused pid) or
// nowhere, it is looked for by inode among every process's and under /run/netns, and ErrGone
// is returned when it is nowhere.
func Open(proc, path string, want uint64) (*NS, error) {
	// The calling thread's namespace, not /proc/self's: that is the main thread's, and a
	// goroutine locked to the main thread may be inside another namespace at this moment
	// (a setns of Do, of a netlink dial, of a test). Taking that one for ours would skip the
	// setns, and the fault would act on the agent's own namespace instead of the one
	// configured. An unlocked goroutine's thread is always in ours.
	self, err := inodeOf(filepath.Join(proc, "thread-self/ns/net"))
	if err != nil {
		return nil, fmt.Errorf("read own network namespace: %w", err)
	}
	if path == "" {
		if want == 0 || want == self {
			return &NS{Inode: self}, nil
		}
		return find(proc, path, want, self)
	}
	f, err := os.Open(path)
	if err != nil {
		if want == 0 {
			return nil, fmt.Errorf("open network namespace %s: %w", path, err)
		}
		return find(proc, path, want, self)
	}
	ino, err := fileInode(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("network namespace %s: %w", path, err)
	}
	if want != 0 && ino != want {
		f.Close()
		return find(proc, path, want, self)
	}
	if !isNetns(f) {
		f.Close()
		return nil, fmt.Errorf("%s is not a network namespace", path)
	}
	if ino == self {
		// Our own namespace by another name: no setns needed.
		f.Close()
		return &NS{Path: path, Inode: ino}, nil
	}
	return &NS{Path: path, Inode: ino, file: f}, nil
}

func find(proc, path string, want, self uint64) (*NS, error) {
	if want == self {
		return &NS{Path: path, Inode: self}, nil
	}
	candidates, _ := filepath.Glob(filepath.Join(proc, "[0-9]*/ns/net"))
	more, _ := filepath.Glob("/run/netns/*")
	for _, c := range append(more, candidates...) {
		if ino, err := inodeOf(c); err != nil || ino != want {
			continue
		}
		f, err := os.Open(c)
		if err != nil {
			continue // the process has just gone; keep looking
		}
		if ino, err := fileInode(f); err != nil || ino != want {
			f.Close()
			continue
		}
		return &NS{Path: path, Inode: want, file: f}, nil
	}
	return nil, fmt.Errorf("%s (inode %d): %w", Name(path), want, ErrGone)
}

func inodeOf(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	return st.Ino, nil
}

func fileInode(f *os.File) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// isNetns reports whether f is a network namespace. Kernels since 4.11 say which kind of
// namespace a file is (NS_GET_NSTYPE); older ones only that it is one (nsfs, or procfs
// before 3.19), and setns(CLONE_NEWNET) refuses the wrong kind anyway. A file that is no
// namespace at all (the ioctl fails with ENOTTY) is refused here, when the fault is planned,
// not at its first setns or netlink dial.
func isNetns(f *os.File) bool {
	t, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_NSTYPE)
	if err == nil {
		return t == unix.CLONE_NEWNET
	}
	var st unix.Statfs_t
	if unix.Fstatfs(int(f.Fd()), &st) != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC || st.Type == unix.PROC_SUPER_MAGIC
}

// Do runs fn on an OS thread that has entered the namespace; sockets fn creates belong to
// the namespace for their whole life. For the caller's own namespace fn just runs. The thread
// is returned to the runtime only if it could go back to its own namespace; otherwise it
// ends with the goroutine.
func (n *NS) Do(fn func() error) error {
	if n.file == nil {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open own network namespace: %w", err)
			return
		}
		defer own.Close()
		if err := unix.Setns(n.FD(), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter %s: %w", n, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(own.Fd()), unix.CLONE_NEWNET); err == nil {
			runtime.UnlockOSThread()
		} // else: the thread stays locked and dies with this goroutine
		errc <- ferr
	}()
	return <-errc
}
