package network

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	tc "github.com/florianl/go-tc"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Reading the state (links, default routes, root qdiscs) goes through plain rtnetlink dumps
// parsed here, not through go-tc: its Qdisc().Get() decodes every qdisc of every interface and
// fails as a whole on a kind it does not know, and only the kind and handle are needed.
// Changes go through go-tc.

// errNetnsGone means the namespace a fault was injected into no longer exists: no path to it
// and no process in it. A namespace takes its qdiscs with it, so there is nothing to revert.
var errNetnsGone = errors.New("network namespace no longer exists")

// netns is an open network namespace: the agent's own (fd 0, no setns needed, so the agent
// only needs CAP_NET_ADMIN) or another one held open by file.
type netns struct {
	path  string // as configured; "" for the agent's own
	inode uint64
	file  *os.File // nil for the agent's own
}

func (n *netns) fd() int {
	if n.file == nil {
		return 0
	}
	return int(n.file.Fd())
}

func (n *netns) Close() error {
	if n.file == nil {
		return nil
	}
	return n.file.Close()
}

// String names the namespace in messages.
func (n *netns) String() string {
	if n.path == "" {
		return "the agent's network namespace"
	}
	return n.path
}

// openNetns opens the namespace at path ("" for the agent's own). With want == 0 (planning)
// the path must lead to a namespace. With want != 0 (reverting, sweeping) the namespace must
// be the one with that inode: if the path now leads elsewhere (a reused pid) or nowhere, the
// namespace is looked for by inode among every process's and under /run/netns, and
// errNetnsGone is returned when it is nowhere.
func openNetns(proc, path string, want uint64) (*netns, error) {
	// The calling thread's namespace, not /proc/self's: that is the main thread's, and a
	// goroutine locked to the main thread may be inside another namespace at this moment
	// (another fault's netlink call); taking that one for ours would skip the setns and act
	// on the agent's own namespace instead.
	self, err := inodeOf(filepath.Join(proc, "thread-self/ns/net"))
	if err != nil {
		return nil, fmt.Errorf("read own network namespace: %w", err)
	}
	if path == "" {
		if want == 0 || want == self {
			return &netns{inode: self}, nil
		}
		return findNetns(proc, path, want, self)
	}
	f, err := os.Open(path)
	if err != nil {
		if want == 0 {
			return nil, fmt.Errorf("open network namespace %s: %w", path, err)
		}
		return findNetns(proc, path, want, self)
	}
	ino, err := fileInode(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("network namespace %s: %w", path, err)
	}
	if want != 0 && ino != want {
		f.Close()
		return findNetns(proc, path, want, self)
	}
	if !isNetns(f) {
		f.Close()
		return nil, fmt.Errorf("%s is not a network namespace", path)
	}
	if ino == self {
		// Our own namespace by another name: no setns needed.
		f.Close()
		return &netns{path: path, inode: ino}, nil
	}
	return &netns{path: path, inode: ino, file: f}, nil
}

func findNetns(proc, path string, want, self uint64) (*netns, error) {
	if want == self {
		return &netns{path: path, inode: self}, nil
	}
	candidates, _ := filepath.Glob(filepath.Join(proc, "[0-9]*/ns/net"))
	more, _ := filepath.Glob("/run/netns/*")
	for _, c := range append(more, candidates...) {
		if ino, err := inodeOf(c); err != nil || ino != want {
			continue
		}
		f, err := os.Open(c)
		if err != nil {
			continue // the process has just gone; keep looking
		}
		if ino, err := fileInode(f); err != nil || ino != want {
			f.Close()
			continue
		}
		return &netns{path: path, inode: want, file: f}, nil
	}
	return nil, fmt.Errorf("%s (inode %d): %w", orOwn(path), want, errNetnsGone)
}

func orOwn(path string) string {
	if path == "" {
		return "the agent's network namespace"
	}
	return path
}

func inodeOf(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	return st.Ino, nil
}

func fileInode(f *os.File) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// isNetns reports whether f is a network namespace. Kernels since 4.11 say which kind of
// namespace a file is (NS_GET_NSTYPE); older ones only that it is one (nsfs, or procfs
// before 3.19), and setns(CLONE_NEWNET) refuses the wrong kind anyway.
func isNetns(f *os.File) bool {
	t, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_NSTYPE)
	if err == nil {
		return t == unix.CLONE_NEWNET
	}
	var st unix.Statfs_t
	if unix.Fstatfs(int(f.Fd()), &st) != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC || st.Type == unix.PROC_SUPER_MAGIC
}

// dial opens an rtnetlink socket for reading in the namespace.
func (n *netns) dial() (*netlink.Conn, error) {
	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: n.fd()})
	if err != nil {
		return nil, fmt.Errorf("rtnetlink in %s: %w", n, err)
	}
	_ = c.SetOption(netlink.ExtendedAcknowledge, true)
	return c, nil
}

// tc opens go-tc in the namespace, with the kernel's error text turned on.
func (n *netns) tc() (*tc.Tc, error) {
	t, err := tc.Open(&tc.Config{NetNS: n.fd()})
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
