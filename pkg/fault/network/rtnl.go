package network

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	tc "github.com/florianl/go-tc"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/chaoscron/chaoscron/pkg/fault/internal/netns"
)

// Reading the state (links, default routes, root qdiscs) goes through plain rtnetlink dumps
// parsed here, not through go-tc: its Qdisc().Get() decodes every qdisc of every interface and
// fails as a whole on a kind it does not know, and only the kind and handle are needed.
// Changes go through go-tc.

// dial opens an rtnetlink socket for reading in the namespace (the agent's own needs no
// setns, so only CAP_NET_ADMIN).
func dial(n *netns.NS) (*netlink.Conn, error) {
	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: n.FD()})
	if err != nil {
		return nil, fmt.Errorf("rtnetlink in %s: %w", n, err)
	}
	_ = c.SetOption(netlink.ExtendedAcknowledge, true)
	return c, nil
}

// dialTC opens go-tc in the namespace, with the kernel's error text turned on.
func dialTC(n *netns.NS) (*tc.Tc, error) {
	t, err := tc.Open(&tc.Config{NetNS: n.FD()})
	if err != nil {
		return nil, fmt.Errorf("rtnetlink in %s: %w", n, err)
	}
	_ = t.SetOption(netlink.ExtendedAcknowledge, true)
	return t, nil
}

type link struct {
	Index int
	Name  string
}

// ifinfomsg, rtmsg and tcmsg sizes, from the kernel's uapi headers.
const (
	sizeIfinfomsg = 16
	sizeRtmsg     = 12
	sizeTcmsg     = 20
)

func dump(c *netlink.Conn, typ netlink.HeaderType, body []byte) ([]netlink.Message, error) {
	return c.Execute(netlink.Message{
		Header: netlink.Header{Type: typ, Flags: netlink.Request | netlink.Dump},
		Data:   body,
	})
}

// links lists the namespace's interfaces.
func links(c *netlink.Conn) ([]link, error) {
	msgs, err := dump(c, unix.RTM_GETLINK, make([]byte, sizeIfinfomsg))
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	var out []link
	for _, m := range msgs {
		if len(m.Data) < sizeIfinfomsg {
			continue
		}
		l := link{Index: int(int32(binary.NativeEndian.Uint32(m.Data[4:8])))}
		ad, err := netlink.NewAttributeDecoder(m.Data[sizeIfinfomsg:])
		if err != nil {
			return nil, fmt.Errorf("list interfaces: %w", err)
		}
		for ad.Next() {
			if ad.Type() == unix.IFLA_IFNAME {
				l.Name = ad.String()
			}
		}
		if ad.Err() != nil {
			return nil, fmt.Errorf("list interfaces: %w", ad.Err())
		}
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b link) int { return a.Index - b.Index })
	return out, nil
}

func byName(ls []link, name string) (link, bool) {
	for _, l := range ls {
		if l.Name == name {
			return l, true
		}
	}
	return link{}, false
}

func byIndex(ls []link, index int) (link, bool) {
	for _, l := range ls {
		if l.Index == index {
			return l, true
		}
	}
	return link{}, false
}

func names(ls []link) string {
	var s []string
	for _, l := range ls {
		s = append(s, l.Name)
	}
	return strings.Join(s, ", ")
}

// defaultRouteLinks returns the indexes of the interfaces that carry a default route (IPv4 or
// IPv6, main table, including every hop of a multipath route).
func defaultRouteLinks(c *netlink.Conn) ([]int, error) {
	var out []int
	for _, family := range []byte{unix.AF_INET, unix.AF_INET6} {
		body := make([]byte, sizeRtmsg)
		body[0] = family
		msgs, err := dump(c, unix.RTM_GETROUTE, body)
		if err != nil {
			if errors.Is(err, unix.EAFNOSUPPORT) {
				continue // IPv6 disabled
			}
			return nil, fmt.Errorf("list routes: %w", err)
		}
		for _, m := range msgs {
			if len(m.Data) < sizeRtmsg {
				continue
			}
			dstLen, table, typ := m.Data[1], uint32(m.Data[4]), m.Data[7]
			if dstLen != 0 || typ != unix.RTN_UNICAST {
				continue
			}
			var oifs []int
			ad, err := netlink.NewAttributeDecoder(m.Data[sizeRtmsg:])
			if err != nil {
				return nil, fmt.Errorf("list routes: %w", err)
			}
			for ad.Next() {
				switch ad.Type() {
				case unix.RTA_TABLE:
					table = ad.Uint32()
				case unix.RTA_OIF:
					oifs = append(oifs, int(ad.Uint32()))
				case unix.RTA_MULTIPATH:
					oifs = append(oifs, multipathOifs(ad.Bytes())...)
				}
			}
			if ad.Err() != nil {
				return nil, fmt.Errorf("list routes: %w", ad.Err())
			}
			if table != unix.RT_TABLE_MAIN {
				continue
			}
			for _, o := range oifs {
				if o > 0 && !slices.Contains(out, o) {
					out = append(out, o)
				}
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// multipathOifs reads the interface of each struct rtnexthop {u16 len; u8 flags; u8 hops;
// s32 ifindex} in an RTA_MULTIPATH attribute.
func multipathOifs(b []byte) []int {
	var out []int
	for len(b) >= 8 {
		n := int(binary.NativeEndian.Uint16(b[0:2]))
		out = append(out, int(int32(binary.NativeEndian.Uint32(b[4:8]))))
		n = (n + 3) &^ 3 // RTNH_ALIGN
		if n < 8 || n > len(b) {
			break
		}
		b = b[n:]
	}
	return out
}

// rootQdiscs returns each interface's root qdisc (kind and handle), by interface index.
func rootQdiscs(c *netlink.Conn) (map[int]qdiscRef, error) {
	msgs, err := dump(c, unix.RTM_GETQDISC, make([]byte, sizeTcmsg))
	if err != nil {
		return nil, fmt.Errorf("list qdiscs: %w", err)
	}
	out := map[int]qdiscRef{}
	for _, m := range msgs {
		if len(m.Data) < sizeTcmsg {
			continue
		}
		ifindex := int(int32(binary.NativeEndian.Uint32(m.Data[4:8])))
		handle := Handle(binary.NativeEndian.Uint32(m.Data[8:12]))
		parent := Handle(binary.NativeEndian.Uint32(m.Data[12:16]))
		if parent != handleRoot {
			continue
		}
		q := qdiscRef{Handle: handle}
		ad, err := netlink.NewAttributeDecoder(m.Data[sizeTcmsg:])
		if err != nil {
			return nil, fmt.Errorf("list qdiscs: %w", err)
		}
		for ad.Next() {
			if ad.Type() == unix.TCA_KIND {
				q.Kind = ad.String()
			}
		}
		if ad.Err() != nil {
			return nil, fmt.Errorf("list qdiscs: %w", ad.Err())
		}
		out[ifindex] = q
	}
	return out, nil
}
