package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// soOriginalDst is SO_ORIGINAL_DST (SOL_IP) and IP6T_SO_ORIGINAL_DST (SOL_IPV6): both 80.
const soOriginalDst = 80

// OriginalDst returns where a redirected connection was going before the redirect: the
// app's address and port, from conntrack. An IPv4 client of a dual-stack listener (a local
// address ::ffff:a.b.c.d) is asked at SOL_IP, an IPv6 one at SOL_IPV6.
func OriginalDst(c net.Conn) (netip.AddrPort, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("original destination: %T has no socket", c)
	}
	local, ok := c.LocalAddr().(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("original destination: %v is not TCP", c.LocalAddr())
	}
	v4 := local.AddrPort().Addr().Unmap().Is4()
	rc, err := sc.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("original destination: %w", err)
	}
	var buf [unix.SizeofSockaddrInet6]byte
	var serr error
	err = rc.Control(func(fd uintptr) {
		level, size := unix.SOL_IPV6, unix.SizeofSockaddrInet6
		if v4 {
			level, size = unix.SOL_IP, unix.SizeofSockaddrInet4
		}
		n := uint32(size)
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, uintptr(level), soOriginalDst,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		if e != 0 {
			serr = e
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return netip.AddrPort{}, fmt.Errorf("original destination of %v: not a redirected connection: %w", c.RemoteAddr(), err)
		}
		return netip.AddrPort{}, fmt.Errorf("original destination of %v: %w", c.RemoteAddr(), err)
	}
	// struct sockaddr_in / sockaddr_in6: family (host order), port (network order), then
	// the address (after sin6_flowinfo for IPv6).
	port := binary.BigEndian.Uint16(buf[2:4])
	if v4 {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(buf[4:8])), port), nil
	}
	return netip.AddrPortFrom(netip.AddrFrom16([16]byte(buf[8:24])), port), nil
}
