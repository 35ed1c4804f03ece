package netns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/chaoscron/chaoscron/internal/testenv"
)

// The main goroutine stays on the main thread (the thread group leader, whose namespace
// /proc/self/ns/net shows), so that the helper below can move that thread elsewhere.
func init() { runtime.LockOSThread() }

const envTarget = "CHAOSCRON_NETNS_TARGET"

func TestMain(m *testing.M) {
	if path := os.Getenv(envTarget); path != "" {
		helper(path)
		return
	}
	os.Exit(m.Run())
}

// helper moves the main thread into the namespace at path, as a goroutine locked to it may
// do at any moment, then opens that namespace from another goroutine and says whether Open
// took it for its own ("own") or for another ("other").
func helper(path string) {
	f, err := os.Open(path)
	if err == nil {
		err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
	}
	if err != nil {
		fmt.Println("setns:", err)
		os.Exit(1)
	}
	done := make(chan string)
	go func() {
		ns, err := Open("/proc", path, 0)
		switch {
		case err != nil:
			done <- err.Error()
		case ns.FD() == 0:
			done <- "own"
		default:
			done <- "other"
		}
	}()
	fmt.Println(<-done)
	os.Exit(0)
}

// TestOpenMainThreadElsewhere: a namespace the main thread happens to be in is not ours.
// Taking it for ours would skip the setns, and every netlink call would act on the agent's
// own namespace instead (a network fault's qdiscs on the agent's interfaces; an http fault's
// revert found no table there and reported success).
func TestOpenMainThreadElsewhere(t *testing.T) {
	testenv.Root(t)
	path, _ := holder(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), envTarget+"="+path)
	out, err := cmd.CombinedOutput()
	if got := strings.TrimSpace(string(out)); err != nil || got != "other" {
		t.Fatalf("Open of the namespace the main thread is in: %q (%v), want it taken for another", got, err)
	}
}

// A namespace whose /proc/<pid> path leads elsewhere (the pid was reused) is found by inode;
// once no process is in it, it is gone.
func TestOpenFindsByInode(t *testing.T) {
	testenv.Root(t)
	a, killA := holder(t)
	b, _ := holder(t)
	inoA, err := inodeOf(a)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := Open("/proc", b, inoA)
	if err != nil {
		t.Fatal(err)
	}
	if ns.Inode != inoA || ns.FD() == 0 || ns.Path != b {
		t.Errorf("found %+v, want inode %d held open under the path %s", ns, inoA, b)
	}
	got, _ := fileInode(ns.file)
	ns.Close()
	if got != inoA {
		t.Errorf("opened inode %d, want %d", got, inoA)
	}
	killA()
	_, err = Open("/proc", b, inoA)
	if !errors.Is(err, ErrGone) || !strings.Contains(err.Error(), b) {
		t.Errorf("after the namespace ended: %v, want ErrGone naming %s", err, b)
	}
	if _, err := Open("/proc", "", inoA); !errors.Is(err, ErrGone) || !strings.Contains(err.Error(), "the agent's network namespace") {
		t.Errorf("the agent's own, by an inode that is gone: %v, want ErrGone naming the agent's namespace", err)
	}
}

func TestOpen(t *testing.T) {
	testenv.Root(t)
	other, _ := holder(t)
	own, err := inodeOf("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, path string
		want       uint64
		fd         bool   // held open by file (another namespace)
		err        string // "" for none
	}{
		{"own", "", 0, false, ""},
		{"own by inode", "", own, false, ""},
		{"own by path", "/proc/self/ns/net", 0, false, ""},
		{"other", other, 0, true, ""},
		{"missing", "/run/netns/chaoscron-does-not-exist", 0, false, "open network namespace /run/netns/chaoscron-does-not-exist: "},
		// Neither kind is a network namespace: setns would refuse both, but only later.
		{"plain file", "/etc/hostname", 0, false, "/etc/hostname is not a network namespace"},
		{"other kind", "/proc/self/ns/uts", 0, false, "/proc/self/ns/uts is not a network namespace"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ns, err := Open("/proc", c.path, c.want)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("Open(%q): %v, want an error with %q", c.path, err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer ns.Close()
			if (ns.FD() != 0) != c.fd || ns.Path != c.path {
				t.Errorf("Open(%q) = %+v, fd %d; want held open %v", c.path, ns, ns.FD(), c.fd)
			}
		})
	}
}

// holder starts a process in a new network namespace and returns the namespace's path and a
// func that ends it (and so the namespace); the test's end does too.
func holder(t *testing.T) (string, func()) {
	t.Helper()
	cmd := exec.Command("sleep", "86400")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		testenv.Require(t, false, "cannot create a network namespace: "+err.Error())
	}
	var once sync.Once
	kill := func() { once.Do(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }) }
	t.Cleanup(kill)
	return fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid), kill
}
