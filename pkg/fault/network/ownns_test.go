package network

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

// The main goroutine keeps the main thread (the thread group leader, whose namespace
// /proc/self/ns/net shows), so that helperMainThreadElsewhere can move that thread.
func init() { runtime.LockOSThread() }

// TestOpenNetnsMainThreadElsewhere: a namespace the main thread happens to be in is not the
// agent's own. Taking it for ours skips the setns, and the fault then acts on the agent's
// namespace instead of the one configured.
func TestOpenNetnsMainThreadElsewhere(t *testing.T) {
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
	cmd.Env = append(os.Environ(), envHelper+"=main-thread-elsewhere", fmt.Sprintf("%s=/proc/%d/ns/net", envParams, holder.Process.Pid))
	out, err := cmd.CombinedOutput()
	if got := strings.TrimSpace(string(out)); err != nil || got != "other" {
		t.Fatalf("openNetns of the namespace the main thread is in: %q (%v), want it taken for another", got, err)
	}
}

// helperMainThreadElsewhere moves the main thread into the namespace at $envParams, as a
// goroutine locked to it may do at any moment, then opens that namespace from another
// goroutine and says whether openNetns took it for the agent's own ("own") or another.
func helperMainThreadElsewhere() {
	path := os.Getenv(envParams)
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
		ns, err := openNetns("/proc", path, 0)
		switch {
		case err != nil:
			done <- err.Error()
		case ns.file == nil:
			done <- "own"
		default:
			done <- "other"
		}
	}()
	fmt.Println(<-done)
	os.Exit(0)
}
