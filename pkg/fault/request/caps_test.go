package request

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/chaoscron/chaoscron/internal/testenv"
	"github.com/chaoscron/chaoscron/pkg/fault"
	"github.com/chaoscron/chaoscron/pkg/fault/request/internal/nstest"
)

// TestSidecarCapabilities: the fault's whole life in a process with exactly the sidecar's
// privileges (uid 0, capabilities NET_ADMIN and KILL and no others, no new privileges),
// inside the pod's network namespace as a sidecar is: no netns parameter, so no setns and
// no SYS_ADMIN. Requests from the client are faulted, and after revert they are not.
func TestSidecarCapabilities(t *testing.T) {
	testenv.Tool(t, "setpriv")
	cl, pod := nstest.Pair(t)
	app(t, pod, 8080)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(fault.Params{"port": 8080, "abort": 503})
	cmd := exec.Command("nsenter", "--net="+pod.Path, "setpriv", "--no-new-privs",
		"--bounding-set=-all,+net_admin,+kill", "--inh-caps=-all", "--", self)
	cmd.Env = append(os.Environ(), envHelper+"=hold", envParams+"="+string(raw))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	out := bufio.NewReader(stdout)
	line, _ := out.ReadString('\n')
	if strings.TrimSpace(line) != "injected" {
		rest, _ := io.ReadAll(out)
		t.Fatalf("helper with NET_ADMIN and KILL only: %s%s", line, rest)
	}
	// nsenter and setpriv each exec the next: the pid is the helper's.
	caps, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	// CapEff of NET_ADMIN (12) and KILL (5): 0x1020.
	if !strings.Contains(string(caps), "CapEff:\t0000000000001020") {
		t.Fatalf("the helper's capabilities are not NET_ADMIN and KILL only:\n%s", caps)
	}
	c := client(cl, false)
	url := "http://" + nstest.PodIP + ":8080/x"
	if code, body := get(t, c, url); code != 503 || body != "fault filter abort" {
		t.Errorf("with the fault: %d %q, want the proxy's abort", code, body)
	}
	fmt.Fprintln(stdin)
	if line, _ := out.ReadString('\n'); strings.TrimSpace(line) != "reverted" {
		rest, _ := io.ReadAll(out)
		t.Fatalf("revert with NET_ADMIN and KILL only: %s%s", line, rest)
	}
	if _, body := get(t, c, url); body != "app /x from "+nstest.ClientIP {
		t.Errorf("after revert: %q, want the app reached directly", body)
	}
	if got := chaoscronTables(t, pod); len(got) != 0 {
		t.Errorf("tables after revert: %v", got)
	}
}
