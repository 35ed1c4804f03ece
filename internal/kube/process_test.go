package kube

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// gone waits up to 10 s for pid to be gone (or a zombie: reaped by nobody, but dead).
func gone(pid int) bool {
	for range 100 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true
		}
		// "pid (comm) S ...": state Z is a dead process waiting for its parent.
		for i := len(b) - 1; i > 0; i-- {
			if b[i] == ')' {
				if i+2 < len(b) && b[i+2] == 'Z' {
					return true
				}
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// A test binary that dies (SIGKILL, no cleanup at all) takes its control plane with it.
func TestControlPlaneDiesWithTheTest(t *testing.T) {
	if os.Getenv("CHAOSCRON_KUBE_HELPER") == "1" {
		c, err := Start(context.Background(), os.Getenv("CHAOSCRON_KUBE_HELPER_DIR"))
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println(c.etcd.cmd.Process.Pid, c.api.cmd.Process.Pid)
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	// Skips, or fails under CI, where there is no control plane to start.
	_, err := Etcd()
	require(t, err)
	_, err = APIServer(context.Background())
	require(t, err)
	cmd := exec.Command(os.Args[0], "-test.run=^TestControlPlaneDiesWithTheTest$")
	cmd.Env = append(os.Environ(), "CHAOSCRON_KUBE_HELPER=1", "CHAOSCRON_KUBE_HELPER_DIR="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	var etcd, api int
	line, _ := bufio.NewReader(out).ReadString('\n')
	if _, err := fmt.Sscan(line, &etcd, &api); err != nil {
		t.Fatalf("the helper said %q", line)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for name, pid := range map[string]int{"etcd": etcd, "kube-apiserver": api} {
		if !gone(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Errorf("%s (pid %d) outlived the test binary that started it", name, pid)
		}
	}
}

// The API server started from a goroutine whose thread the runtime then ends (a goroutine
// that returns while locked to its thread, as namespace tests do) keeps running: Pdeathsig
// follows the forking thread, so the forks happen on a thread that never ends.
func TestAPIServerOutlivesItsStartingThread(t *testing.T) {
	c := Shared(t)
	if err := c.KillAPIServer(); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error)
	go func() {
		runtime.LockOSThread() // and never unlocked: the thread ends with this goroutine
		errc <- c.StartAPIServer(context.Background())
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the thread's exit, then the signal, if any
	if c.api.exited() {
		t.Fatalf("the API server died with the thread that started it: %v", c.api.err)
	}
	if _, err := c.Client().CoreV1().Namespaces().Get(context.Background(), "default", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
}
