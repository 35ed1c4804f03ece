package network

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// describeFilters renders filters the way `tc filter show` prints u32 keys, which is what
// the VM test reads back from the kernel.
func describeFilters(fs []u32Filter) string {
	var b strings.Builder
	for _, f := range fs {
		fam := "ip"
		if f.Proto == unix.ETH_P_IPV6 {
			fam = "ipv6"
		}
		fmt.Fprintf(&b, "prio %d %s flowid %s:", f.Prio, fam, f.Band)
		for _, k := range f.Keys {
			fmt.Fprintf(&b, " %08x/%08x@%d", k.Val, k.Mask, k.Off)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestFilters(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    scope
		want string
	}{
		{"unscoped, nothing excluded", scope{}, ""},
		{"unscoped, exclude 8000", scope{Exclude: []uint16{8000}}, `
prio 1 ip flowid c4a0:1: 05000000/0f000000@0 00000000/00001fff@4 1f400000/ffff0000@20
prio 1 ip flowid c4a0:1: 05000000/0f000000@0 00000000/00001fff@4 00001f40/0000ffff@20
prio 2 ipv6 flowid c4a0:1: 1f400000/ffff0000@40
prio 2 ipv6 flowid c4a0:1: 00001f40/0000ffff@40
`},
		{"ports", scope{Ports: []uint16{8080}}, `
prio 3 ip flowid c4a0:2: 05000000/0f000000@0 00000000/00001fff@4 1f900000/ffff0000@20
prio 3 ip flowid c4a0:2: 05000000/0f000000@0 00000000/00001fff@4 00001f90/0000ffff@20
prio 4 ipv6 flowid c4a0:2: 1f900000/ffff0000@40
prio 4 ipv6 flowid c4a0:2: 00001f90/0000ffff@40
`},
		{"cidrs", scope{CIDRs: []netip.Prefix{
			netip.MustParsePrefix("10.99.0.3/32"), netip.MustParsePrefix("10.0.0.0/8"),
			netip.MustParsePrefix("fd00:1:2:3:4ff::/72"), netip.MustParsePrefix("0.0.0.0/0"),
		}}, `
prio 3 ip flowid c4a0:2: 0a630003/ffffffff@16
prio 3 ip flowid c4a0:2: 0a000000/ff000000@16
prio 4 ipv6 flowid c4a0:2: fd000001/ffffffff@24 00020003/ffffffff@28 04000000/ff000000@32
prio 3 ip flowid c4a0:2: 00000000/00000000@16
`},
		{"cidr and port", scope{CIDRs: []netip.Prefix{netip.MustParsePrefix("fd00::1/128")}, Ports: []uint16{443}}, `
prio 4 ipv6 flowid c4a0:2: fd000000/ffffffff@24 00000000/ffffffff@28 00000000/ffffffff@32 00000001/ffffffff@36 01bb0000/ffff0000@40
prio 4 ipv6 flowid c4a0:2: fd000000/ffffffff@24 00000000/ffffffff@28 00000000/ffffffff@32 00000001/ffffffff@36 000001bb/0000ffff@40
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := describeFilters(filters(tc.s))
			if want := strings.TrimPrefix(tc.want, "\n"); got != want {
				t.Errorf("got\n%swant\n%s", got, want)
			}
		})
	}
}

func TestFilterObject(t *testing.T) {
	f := filters(scope{Ports: []uint16{8080}})[1]
	obj, err := f.object(7)
	if err != nil {
		t.Fatal(err)
	}
	if obj.Ifindex != 7 || obj.Parent != 0xC4A00000 || *obj.U32.ClassID != 0xC4A00002 || obj.U32.Sel.Flags != 1 {
		t.Errorf("object %+v sel %+v", obj.Msg, obj.U32.Sel)
	}
	// tcm_info: priority in the upper half, the protocol in network byte order below.
	var proto [2]byte
	binary.NativeEndian.PutUint16(proto[:], uint16(obj.Info))
	if obj.Info>>16 != 3 || !bytes.Equal(proto[:], []byte{0x08, 0x00}) {
		t.Errorf("info = %#x", obj.Info)
	}
	// go-tc writes key fields in host order; the kernel reads mask and value as __be32.
	k := obj.U32.Sel.Keys[2]
	var wire [4]byte
	binary.NativeEndian.PutUint32(wire[:], k.Val)
	if !bytes.Equal(wire[:], []byte{0, 0, 0x1f, 0x90}) || k.Off != 20 {
		t.Errorf("dport key on the wire = % x at %d, want 00 00 1f 90 at 20", wire, k.Off)
	}
}
