package network

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	tc "github.com/florianl/go-tc"
	"github.com/florianl/go-tc/core"

	"github.com/chaoscron/chaoscron/pkg/fault/internal/netns"
)

// BenchmarkQdiscAdd times putting one root qdisc in place on a veth inside a network
// namespace, through netlink (go-tc: open a socket in the namespace, add, close) and by
// running iproute2's tc (`tc -n <ns> qdisc add ...`), side by side. Removing it again between
// iterations is not timed. The qdisc is netem where the kernel has it (the VM: BenchmarkVM
// runs this there) and tbf otherwise (this machine's kernel).
func BenchmarkQdiscAdd(b *testing.B) {
	requireNetns(b)
	ns := newNS(b)
	ns.innerPair(b, "cc-a", "cc-b")
	name := fmt.Sprintf("chaoscron-bench-%d", os.Getpid())
	sh(b, fmt.Sprintf("$IP netns attach %s %d", name, ns.PID))
	b.Cleanup(func() { _, _ = shErr(b, "", "$IP netns delete "+name) })
	index := ns.ifindex(b, "cc-a")
	nsh, err := netns.Open("/proc", ns.Path, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer nsh.Close()

	delay := int64(100 * time.Millisecond)
	kind, tcArgs := "netem", "netem delay 100ms limit 1000"
	attr := tc.Attribute{Kind: "netem", Netem: &tc.Netem{Qopt: tc.NetemQopt{Limit: 1000}, Latency64: &delay}}
	add := func() error {
		t, err := dialTC(nsh)
		if err != nil {
			return err
		}
		defer t.Close()
		return t.Qdisc().Add(&tc.Object{Msg: qdiscMsg(index, rootHandle, handleRoot), Attribute: attr})
	}
	del := func() {
		b.Helper()
		t, err := dialTC(nsh)
		if err != nil {
			b.Fatal(err)
		}
		defer t.Close()
		obj := tc.Object{Msg: qdiscMsg(index, rootHandle, handleRoot), Attribute: attr}
		if err := t.Qdisc().Delete(&obj); err != nil {
			b.Fatalf("delete %s: %v", kind, err)
		}
	}
	if err := add(); err != nil {
		// go-tc computes tbf's rate table from /proc/net/psched.
		if err := core.InitializeClock(); err != nil {
			b.Fatal(err)
		}
		// No netem in this kernel: 1mbit, 4000-byte burst (32ms of 64ns ticks), 400ms latency.
		kind, tcArgs = "tbf", "tbf rate 1mbit burst 4000 latency 400ms"
		attr = tc.Attribute{Kind: "tbf", Tbf: &tc.Tbf{Parms: &tc.TbfQopt{
			Rate: tc.RateSpec{Linklayer: 1, Rate: 125000}, Limit: 54000, Buffer: 500000,
		}}}
		if err := add(); err != nil {
			b.Fatalf("neither netem nor tbf: %v", err)
		}
	}
	del()
	tcBin := iproute(b, "tc")

	b.Run("netlink/"+kind, func(b *testing.B) {
		for range b.N {
			if err := add(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			del()
			b.StartTimer()
		}
	})
	b.Run("tc-exec/"+kind, func(b *testing.B) {
		args := append([]string{"-n", name, "qdisc", "add", "dev", "cc-a", "root", "handle", "c4a0:"}, strings.Fields(tcArgs)...)
		for range b.N {
			if out, err := exec.Command(tcBin, args...).CombinedOutput(); err != nil {
				b.Fatalf("tc %v: %v\n%s", args, err, out)
			}
			b.StopTimer()
			del()
			b.StartTimer()
		}
	})
}
