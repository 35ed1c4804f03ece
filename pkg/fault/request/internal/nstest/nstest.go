// Package nstest builds network namespaces for the http fault's tests: a "pod" and a
// "client" joined by a veth pair, each held by a sleeping process, with helpers to listen,
// dial and run tools inside them. It needs root, ip, nsenter and nft (testenv skips or, under
// CI, fails without them).
package nstest

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/internal/testenv"
	"github.com/chaoscron/chaoscron/pkg/fault/internal/netns"
)

// Addresses of a Pair: the client is .1, the pod .2.
const (
	ClientIP  = "10.77.0.1"
	PodIP     = "10.77.0.2"
	ClientIP6 = "fd77::1"
	PodIP6    = "fd77::2"
)

// Require skips (fails under CI) unless the tests can build namespaces.
func Require(t testing.TB) {
	t.Helper()
	testenv.Root(t)
	testenv.Tool(t, "ip")
	testenv.Tool(t, "nsenter")
	testenv.Tool(t, "nft")
}

// NS is a network namespace held by a process, removed at the end of the test.
type NS struct {
	Path string
	PID  int
	ns   *netns.NS
}

// New starts a namespace with lo up.
func New(t testing.TB) *NS {
	t.Helper()
	Require(t)
	cmd := exec.Command("sleep", "86400")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		testenv.Require(t, false, "cannot create a network namespace: "+err.Error())
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	n := &NS{Path: fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid), PID: cmd.Process.Pid}
	ns, err := netns.Open("/proc", n.Path, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	n.ns = ns
	n.Sh(t, "ip link set lo up")
	return n
}

// NS returns the open namespace.
func (n *NS) NS() *netns.NS { return n.ns }

// Sh runs a shell script inside the namespace and returns its output; failure fails the test.
func (n *NS) Sh(t testing.TB, script string) string {
	t.Helper()
	out, err := n.ShErr(script)
	if err != nil {
		t.Fatalf("%s\n%s: %v", script, out, err)
	}
	return out
}

// ShErr runs a shell script inside the namespace.
func (n *NS) ShErr(script string) (string, error) {
	out, err := exec.Command("nsenter", "--net="+n.Path, "sh", "-ec", script).CombinedOutput()
	return string(out), err
}

// Tables lists every nftables table in the namespace, as nft prints them ("inet name").
func (n *NS) Tables(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(n.Sh(t, "nft list tables"), "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(l), "table "); ok {
			out = append(out, s)
		}
	}
	return out
}

// Listen listens on addr inside the namespace.
func (n *NS) Listen(t testing.TB, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	err := n.ns.Do(func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// Dial connects to addr from inside the namespace.
func (n *NS) Dial(ctx context.Context, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.ns.Do(func() (err error) {
		c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", addr)
		return err
	})
	return c, err
}

// DialContext is Dial with the signature of net/http's Transport.DialContext.
func (n *NS) DialContext(ctx context.Context, _, addr string) (net.Conn, error) {
	return n.Dial(ctx, addr)
}

// Pair makes a client namespace and a pod namespace joined by a veth pair: ClientIP and
// ClientIP6 in client, PodIP and PodIP6 in pod.
func Pair(t testing.TB) (client, pod *NS) {
	t.Helper()
	client, pod = New(t), New(t)
	out, err := exec.Command("ip", "link", "add", "hc", "netns", fmt.Sprint(client.PID), "type", "veth",
		"peer", "name", "hp", "netns", fmt.Sprint(pod.PID)).CombinedOutput()
	if err != nil {
		t.Fatalf("ip link add: %s: %v", out, err)
	}
	client.Sh(t, fmt.Sprintf(`ip addr add %s/24 dev hc
ip -6 addr add %s/64 dev hc nodad
ip link set hc up`, ClientIP, ClientIP6))
	pod.Sh(t, fmt.Sprintf(`ip addr add %s/24 dev hp
ip -6 addr add %s/64 dev hp nodad
ip link set hp up`, PodIP, PodIP6))
	return client, pod
}
