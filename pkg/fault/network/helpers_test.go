package network

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/internal/testenv"
	"github.com/chaoscron/chaoscron/pkg/fault"
)

// The test binary doubles as its own helper processes, chosen by envHelper:
//
//	netns         runs in a new network namespace (CLONE_NEWNET), serves UDP echo on the
//	              ports in envEchoPorts, prints "ready" and lives until its stdin closes
//	inject-crash  plans a fault, writes the plan to a file (as the journal would), injects, and
//	              exits with status 3 right after the first interface: an agent dying between
//	              two interfaces
const (
	envHelper    = "CHAOSCRON_NETWORK_HELPER"
	envEchoPorts = "CHAOSCRON_ECHO_PORTS"
	envParams    = "CHAOSCRON_PARAMS"
	envPlanFile  = "CHAOSCRON_PLAN_FILE"
	// envInVM is set by TestVM's /init: the tests that need the netem kernel run.
	envInVM = "CHAOSCRON_IN_VM"
)

func TestMain(m *testing.M) {
	switch os.Getenv(envHelper) {
	case "":
		os.Exit(m.Run())
	case "netns":
		helperNetns()
	case "inject-crash":
		helperInjectCrash()
	default:
		fmt.Fprintln(os.Stderr, "unknown helper", os.Getenv(envHelper))
		os.Exit(2)
	}
}

func helperNetns() {
	for _, p := range strings.Split(os.Getenv(envEchoPorts), ",") {
		if p == "" {
			continue
		}
		c, err := net.ListenPacket("udp", ":"+p)
		if err != nil {
			fmt.Println("listen:", err)
			os.Exit(1)
		}
		go echo(c)
	}
	fmt.Println("ready")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until the parent closes stdin or dies
	os.Exit(0)
}

func helperInjectCrash() {
	var p fault.Params
	if err := json.Unmarshal([]byte(os.Getenv(envParams)), &p); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	ff, err := New(p, fault.Env{})
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	f := ff.(*Fault)
	plan, err := f.Plan(context.Background(), "crash")
	if err == nil {
		err = writeSync(os.Getenv(envPlanFile), plan)
	}
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	f.afterInterface = func(i int, name string) error {
		fmt.Println("injected on", name, "- dying now")
		os.Exit(3)
		return nil
	}
	_, err = f.Inject(context.Background(), plan)
	fmt.Println("inject returned:", err)
	os.Exit(0)
}

func writeSync(path string, b []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func echo(c net.PacketConn) {
	buf := make([]byte, 2048)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		_, _ = c.WriteTo(buf[:n], from)
	}
}

func inVM() bool { return os.Getenv(envInVM) == "1" }

// requireVM skips a test unless it runs inside the VM. These tests are not optional: TestVM
// runs them there, and TestVM is required under CI.
func requireVM(t *testing.T) {
	t.Helper()
	if !inVM() {
		t.Skip("runs inside the test VM, started by TestVM")
	}
}

// requireNetns gates tests that create network namespaces: root, and the tools to set
// interfaces up in them.
func requireNetns(t testing.TB) {
	t.Helper()
	testenv.Root(t)
	testenv.Tool(t, "nsenter")
	iproute(t, "ip")
	iproute(t, "tc")
}

// iproute returns iproute2's tool: in the VM it is installed as iproute-<name>, since
// busybox has applets of the same names.
func iproute(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath("iproute-" + name); err == nil {
		return p
	}
	return testenv.Tool(t, name)
}

func faultEnv() fault.Env {
	return fault.Env{Log: slog.New(slog.DiscardHandler)}
}

// sh runs a shell script in the test's own namespace with $IP and $TC set to iproute2's
// tools, and returns its output; a failure fails the test.
func sh(t testing.TB, script string) string {
	t.Helper()
	return shIn(t, "", script)
}

func shIn(t testing.TB, nsPath, script string) string {
	t.Helper()
	out, err := shErr(t, nsPath, script)
	if err != nil {
		t.Fatalf("%s\n%s: %v", script, out, err)
	}
	return out
}

func shErr(t testing.TB, nsPath, script string) (string, error) {
	t.Helper()
	args := []string{"sh", "-ec", script}
	if nsPath != "" {
		args = append([]string{"nsenter", "--net=" + nsPath}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "IP="+iproute(t, "ip"), "TC="+iproute(t, "tc"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// testNS is a network namespace held by a helper process.
type testNS struct {
	Path string
	PID  int
	cmd  *exec.Cmd
}

// newNS starts a namespace with lo up and UDP echo servers on ports. It is removed at the
// end of the test (with everything in it).
func newNS(t testing.TB, ports ...int) *testNS {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	var ps []string
	for _, p := range ports {
		ps = append(ps, strconv.Itoa(p))
	}
	cmd.Env = append(os.Environ(), envHelper+"=netns", envEchoPorts+"="+strings.Join(ps, ","))
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		testenv.Require(t, false, "cannot create a network namespace: "+err.Error())
	}
	n := &testNS{Path: fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid), PID: cmd.Process.Pid, cmd: cmd}
	t.Cleanup(func() {
		stdin.Close()
		n.Kill()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("namespace helper: %q %v", line, err)
	}
	shIn(t, n.Path, "$IP link set lo up")
	return n
}

// Kill ends the helper; the namespace goes with it.
func (n *testNS) Kill() {
	if n.cmd.ProcessState == nil {
		_ = n.cmd.Process.Kill()
		_ = n.cmd.Wait()
	}
}

// sh runs a script inside the namespace.
func (n *testNS) sh(t testing.TB, script string) string {
	t.Helper()
	return shIn(t, n.Path, script)
}

// ifindex returns an interface's index inside the namespace, as ip reads it.
func (n *testNS) ifindex(t testing.TB, name string) int {
	t.Helper()
	out := n.sh(t, "$IP -o link show dev "+name)
	i, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(out, ":", 2)[0]))
	if err != nil {
		t.Fatalf("ip link show %s: %q", name, out)
	}
	return i
}

// qdiscs returns `tc qdisc show dev` (no statistics, which change) for an interface.
func (n *testNS) qdiscs(t testing.TB, dev string) string {
	t.Helper()
	return n.sh(t, "$TC qdisc show dev "+dev)
}

// vethPair creates the veth pair a (outside, in the test's namespace, 10.99.0.1/24 and
// 10.99.0.3/24, fd99::1/64) and b (inside n, 10.99.0.2/24, fd99::2/64, default routes
// through a).
func (n *testNS) vethPair(t testing.TB, a, b string) {
	t.Helper()
	sh(t, fmt.Sprintf(`$IP link add %[1]s type veth peer name %[2]s netns %[3]d
$IP addr add 10.99.0.1/24 dev %[1]s
$IP addr add 10.99.0.3/24 dev %[1]s
$IP -6 addr add fd99::1/64 dev %[1]s nodad
$IP link set %[1]s up`, a, b, n.PID))
	t.Cleanup(func() { _, _ = shErr(t, "", "$IP link del "+a) })
	n.sh(t, fmt.Sprintf(`$IP addr add 10.99.0.2/24 dev %[1]s
$IP -6 addr add fd99::2/64 dev %[1]s nodad
$IP link set %[1]s up
$IP route add default via 10.99.0.1
$IP -6 route add default via fd99::1`, b))
}

// innerPair creates a veth pair with both ends inside n, a with a default route.
func (n *testNS) innerPair(t testing.TB, a, b string) {
	t.Helper()
	n.sh(t, fmt.Sprintf(`$IP link add %[1]s type veth peer name %[2]s
$IP addr add 10.98.0.2/24 dev %[1]s
$IP link set %[1]s up
$IP link set %[2]s up
$IP route add default via 10.98.0.1`, a, b))
}

// rtt measures n UDP round trips from laddr (may be "") to raddr and returns the shortest:
// load on the machine (an emulated VM on a busy host) only ever adds to a round trip, and
// netem never delivers a packet before its delay, so the minimum is the cleanest figure.
func rtt(t testing.TB, laddr, raddr string, n int) time.Duration {
	t.Helper()
	d := net.Dialer{Timeout: 2 * time.Second}
	if laddr != "" {
		la, err := net.ResolveUDPAddr("udp", laddr)
		if err != nil {
			t.Fatal(err)
		}
		d.LocalAddr = la
	}
	c, err := d.Dial("udp", raddr)
	if err != nil {
		t.Fatalf("dial %s: %v", raddr, err)
	}
	defer c.Close()
	var samples []time.Duration
	buf := make([]byte, 64)
	for i := range n + 4 { // a few extra tries for a lost first packet (ARP, ND)
		if len(samples) == n {
			break
		}
		msg := []byte(fmt.Sprintf("ping %d", i))
		start := time.Now()
		if _, err := c.Write(msg); err != nil {
			t.Fatalf("send to %s: %v", raddr, err)
		}
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		for {
			m, err := c.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				t.Fatalf("read from %s: %v", raddr, err)
			}
			if string(buf[:m]) == string(msg) {
				samples = append(samples, time.Since(start))
				break
			}
		}
	}
	if len(samples) < n {
		t.Fatalf("%s: only %d of %d echoes came back", raddr, len(samples), n)
	}
	return slices.Min(samples)
}

// echoServer serves UDP echo on addr in the test's own namespace until the test ends.
func echoServer(t testing.TB, addr string) {
	t.Helper()
	c, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go echo(c)
}

func decodeTestUndo(t testing.TB, b []byte) undo {
	t.Helper()
	var u undo
	if err := json.Unmarshal(b, &u); err != nil {
		t.Fatalf("undo %s: %v", b, err)
	}
	return u
}

func states(t testing.TB, b []byte) []string {
	t.Helper()
	var out []string
	for _, i := range decodeTestUndo(t, b).Interfaces {
		out = append(out, i.Name+"="+i.State)
	}
	return out
}

// inodeOf is the inode of the namespace file at path, as an undo records it: read here with
// stat, not through the code under test.
func inodeOf(path string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}
