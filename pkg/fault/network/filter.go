package network

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	tc "github.com/florianl/go-tc"
	"golang.org/x/sys/unix"
)

// Steering traffic onto the netem band.
//
// chaoscron's root is a prio qdisc with two bands: c4a0:1 (pfifo, untouched traffic) and
// c4a0:2 (netem). Packets no filter claims go by the priomap, which sends all of them to one
// band: the netem band when the fault covers all traffic, the plain band when it is scoped by
// ports or cidrs. u32 filters then move packets between the bands:
//
//	prio 1, 2 (IPv4, IPv6): exclude_ports, source or destination → c4a0:1, checked first
//	prio 3, 4 (IPv4, IPv6): ports × cidrs, source or destination port → c4a0:2 (scoped only)
//
// Filters of one protocol share a priority (the kernel refuses two protocols on one).
//
// What u32 can and cannot see (also said for users in the package doc):
//   - ports are read at a fixed offset after an IPv4 header without options (ihl 5) or an IPv6
//     header without extension headers, as `tc ... match ip dport` does; IPv4 packets with
//     options and non-first fragments (no port in them) never match a port;
//   - a port matches as source or destination, so both a client's requests to it and a
//     server's replies from it are affected; the protocol is not checked (TCP, UDP, SCTP);
//   - cidrs match the destination address: this is egress, the peer is the destination.

const (
	prioExcludeV4 = 1
	prioExcludeV6 = 2
	prioMatchV4   = 3
	prioMatchV6   = 4

	u32Terminal = 1 // TC_U32_TERMINAL: a match classifies the packet
)

// u32Filter is one filter to add: its priority, protocol, target band and keys.
type u32Filter struct {
	Prio  uint16
	Proto uint16 // ETH_P_IP or ETH_P_IPV6
	Band  Handle
	Keys  []u32Key
}

// u32Key matches (packet's 32 bits at Off, from the network header) & Mask == Val, all in
// network byte order as written here; toTC converts them to the struct the kernel wants.
type u32Key struct {
	Off       int32
	Mask, Val uint32
}

// filters returns the filters that implement s, in the order they are added.
func filters(s scope) []u32Filter {
	var out []u32Filter
	for _, p := range s.Exclude {
		for _, v6 := range []bool{false, true} {
			for _, src := range []bool{true, false} {
				out = append(out, u32Filter{
					Prio: pick(v6, prioExcludeV6, prioExcludeV4), Proto: proto(v6), Band: passBand,
					Keys: portKeys(v6, src, p),
				})
			}
		}
	}
	if !s.scoped() {
		return out
	}
	match := func(v6 bool, keys []u32Key) {
		out = append(out, u32Filter{Prio: pick(v6, prioMatchV6, prioMatchV4), Proto: proto(v6), Band: netemBand, Keys: keys})
	}
	switch {
	case len(s.CIDRs) == 0: // ports only, both families
		for _, p := range s.Ports {
			for _, v6 := range []bool{false, true} {
				match(v6, portKeys(v6, true, p))
				match(v6, portKeys(v6, false, p))
			}
		}
	case len(s.Ports) == 0: // cidrs only
		for _, c := range s.CIDRs {
			match(c.Addr().Is6(), dstKeys(c))
		}
	default: // both: a packet must match a cidr and a port
		for _, c := range s.CIDRs {
			v6 := c.Addr().Is6()
			for _, p := range s.Ports {
				match(v6, append(dstKeys(c), portKeys(v6, true, p)...))
				match(v6, append(dstKeys(c), portKeys(v6, false, p)...))
			}
		}
	}
	return out
}

func pick(v6 bool, a, b uint16) uint16 {
	if v6 {
		return a
	}
	return b
}

func proto(v6 bool) uint16 { return pick(v6, unix.ETH_P_IPV6, unix.ETH_P_IP) }

// portKeys matches the source (src) or destination port.
func portKeys(v6, src bool, port uint16) []u32Key {
	k := u32Key{Off: 20, Mask: 0x0000FFFF, Val: uint32(port)}
	if src {
		k.Mask, k.Val = 0xFFFF0000, uint32(port)<<16
	}
	if v6 {
		k.Off = 40
		return []u32Key{k}
	}
	return []u32Key{
		{Off: 0, Mask: 0x0F000000, Val: 0x05000000}, // ihl 5: the ports are at byte 20
		{Off: 4, Mask: 0x00001FFF, Val: 0},          // fragment offset 0: there is a port
		k,
	}
}

// dstKeys matches the destination address against prefix c (IPv4 at byte 16, IPv6 at 24).
func dstKeys(c netip.Prefix) []u32Key {
	a := c.Addr().AsSlice()
	off := int32(16)
	if c.Addr().Is6() {
		off = 24
	}
	var keys []u32Key
	for i, bits := 0, c.Bits(); i*32 < len(a)*8 && bits > 0; i++ {
		n := min(bits, 32)
		mask := ^uint32(0) << (32 - n)
		keys = append(keys, u32Key{Off: off + int32(4*i), Mask: mask, Val: binary.BigEndian.Uint32(a[4*i:]) & mask})
		bits -= n
	}
	if len(keys) == 0 { // 0.0.0.0/0 or ::/0: any address of the family
		keys = append(keys, u32Key{Off: off, Mask: 0, Val: 0})
	}
	return keys
}

// netOrder returns v such that go-tc, which writes the key's mask and value in host byte
// order, puts v's big-endian bytes on the wire (the kernel's tc_u32_key holds __be32).
func netOrder(v uint32) uint32 {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return binary.NativeEndian.Uint32(b[:])
}

// htons for the protocol in tcm_info.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// object returns the go-tc object that adds f on ifindex under chaoscron's root.
func (f u32Filter) object(ifindex int) (*tc.Object, error) {
	if len(f.Keys) > 128 {
		return nil, fmt.Errorf("u32 filter with %d keys", len(f.Keys))
	}
	keys := make([]tc.U32Key, len(f.Keys))
	for i, k := range f.Keys {
		keys[i] = tc.U32Key{Mask: netOrder(k.Mask), Val: netOrder(k.Val), Off: uint32(k.Off)}
	}
	classID := uint32(f.Band)
	return &tc.Object{
		Msg: tc.Msg{
			Family:  unix.AF_UNSPEC,
			Ifindex: uint32(ifindex),
			Parent:  uint32(rootHandle),
			Info:    uint32(f.Prio)<<16 | uint32(htons(f.Proto)),
		},
		Attribute: tc.Attribute{
			Kind: "u32",
			U32: &tc.U32{
				ClassID: &classID,
				Sel:     &tc.U32Sel{Flags: u32Terminal, NKeys: uint8(len(keys)), Keys: keys},
			},
		},
	}, nil
}
