// Package netns opens a network namespace by path and runs code inside it, for the http
// fault: its proxy listens and dials in the app's namespace, and its nftables table lives
// there.
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
// Whatever was in it (an nftables table) went with it.
var ErrGone = errors.New("network namespace no longer exists")

// NS is an open network namespace: the caller's own (no file, no setns) or another held
// open by file.
type NS struct {
	Path  string // as configured; "" for the agent's own
	Inode uint64
	file  *os.File
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

func (n *NS) String() string {
	if n.Path == "" {
		return "the agent's network namespace"
	}
	return n.Path
}

// Open opens the namespace at path ("" for the caller's own). With want == 0 the path must
// lead to a namespace. With want != 0 the namespace must be the one with that inode: when the
// path leads elsewhere (a reused pid) or nowhere, it is looked for by inode among every
// process's and under /run/netns, and ErrGone is returned when it is nowhere.
func Open(proc, path string, want uint64) (*NS, error) {
	// The calling thread's namespace, not /proc/self's: that is the main thread's, and a
	// goroutine locked to the main thread may be inside another namespace at this moment
	// (a setns of this package, of a netlink dial, of a test), which would make that
	// namespace look like our own. An unlocked goroutine's thread is always in ours.
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
	if t, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_NSTYPE); err == nil && t != unix.CLONE_NEWNET {
		f.Close()
		return nil, fmt.Errorf("%s is not a network namespace", path)
	}
	if ino == self {
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
	name := path
	if name == "" {
		name = "the agent's network namespace"
	}
	return nil, fmt.Errorf("%s (inode %d): %w", name, want, ErrGone)
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
