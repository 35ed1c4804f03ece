package api

import (
	"fmt"
	"net"
	"net/http"
	"syscall"
	"time"

	"golang.org/x/net/netutil"
)

// Connection and descriptor budget. Without them one client could starve the agent: 20,000
// idle connections on agent.listen used up its descriptors, so disk reverts failed with
// "too many open files" and a halt on the socket waited for an accept that kept failing.
const (
	// MaxConns caps the network listener's connections at once; more wait in the kernel's
	// accept queue, where they cost the agent no descriptor.
	MaxConns = 512
	// SocketConns caps the socket's connections, separately, so that a flood on the network
	// never takes a slot the socket's halt needs.
	SocketConns = 64
	// FDReserve descriptors are kept for everything that is not a connection: the journal,
	// reverts (a fill's file and directory, netlink sockets, pidfds), the process scan.
	FDReserve = 256
)

// Server timeouts. A handler that legitimately takes longer (an export, a halt waiting for
// reverts) moves its own write deadline; see extendWrite.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second // headers and a body of at most MaxBody
	idleTimeout       = 10 * time.Second // between requests on a kept-alive connection
	maxHeaderBytes    = 16 << 10
)

// writeTimeout bounds writing one answer, or one stretch of a long one. A variable only so
// that a test can show an export outlasting it without taking half a minute.
var writeTimeout = 30 * time.Second

// NewServer returns the server for one of the agent's listeners, with every timeout set:
// a connection that sends nothing, reads nothing or idles is closed, and its slot freed.
func NewServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
	}
}

// LimitConns lets ln hold at most n connections at once: Accept waits for one to close.
func LimitConns(ln net.Listener, n int) net.Listener { return netutil.LimitListener(ln, n) }

// NetworkConns raises the soft limit on open files to the hard one (the Go runtime does so
// too since Go 1.19; this makes it explicit, and reads the result) and returns how many
// connections the network listener may hold: MaxConns, or fewer where the limit would not
// leave SocketConns and FDReserve besides. The error is only for the log: the caller goes on
// with the number returned.
func NetworkConns() (int, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return MaxConns, fmt.Errorf("read the open-files limit: %w", err)
	}
	var err error
	if rl.Cur < rl.Max {
		raised := syscall.Rlimit{Cur: rl.Max, Max: rl.Max}
		if err = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err == nil {
			rl = raised
		} else {
			err = fmt.Errorf("raise the open-files limit to %d: %w", rl.Max, err)
		}
	}
	return connsFor(rl.Cur), err
}

// connsFor is the network listener's share of a limit of nofile descriptors. At least 8, so
// that metrics are still served on a host with a tiny limit; the reserve then shrinks.
func connsFor(nofile uint64) int {
	n := int64(min(nofile, 1<<20)) - SocketConns - FDReserve
	return int(max(8, min(n, MaxConns)))
}

// extendWrite moves the write deadline of w's connection to d from now, for a handler that
// answers late (a halt waiting for reverts) or long (an export). Where the writer cannot
// (a test recorder), there is no deadline to move.
func extendWrite(w http.ResponseWriter, d time.Duration) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d))
}
