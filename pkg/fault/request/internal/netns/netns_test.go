package netns

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
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
// own namespace instead (an http fault's revert found no table there and reported success).
func TestOpenMainThreadElsewhere(t *testing.T) {
	testenv.Root(t)
	holder := exec.Command("sleep", "86400")
	holder.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if err := holder.Start(); err != nil {
		testenv.Require(t, false, "cannot create a network namespace: "+err.Error())
	}
	t.Cleanup(func() { _ = holder.Process.Kill(); _ = holder.Wait() })
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=/proc/%d/ns/net", envTarget, holder.Process.Pid))
	out, err := cmd.CombinedOutput()
	if got := strings.TrimSpace(string(out)); err != nil || got != "other" {
		t.Fatalf("Open of the namespace the main thread is in: %q (%v), want it taken for another", got, err)
	}
}
