// Package proxy is the http fault's userspace proxy: it stands between clients and the app,
// forwards every connection 1:1 to the app, and aborts or delays the requests a Rule picks.
//
// Each accepted connection is sniffed: HTTP/1.x is proxied request by request on one upstream
// connection (keep-alive, pipelining and Upgrade kept); the h2c preface is served as HTTP/2 (so
// gRPC, trailers included); anything else is spliced as plain TCP. Requests that are not
// faulted go through byte for byte, headers included (nothing like X-Forwarded-For is added).
//
// What the proxy does not parse it splices, and so never faults: an HTTP/1 head larger than
// 16 KiB, a body framed by both Content-Length and Transfer-Encoding (or by a coding other than
// chunked), whatever follows an Upgrade or CONNECT request, and a connection whose app speaks
// first (other than an HTTP/2 server's SETTINGS).
package proxy

//lint:file-ignore SA1019 see h2.go: x/net/http2 is what serves and dials over given connections.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http2"
)

// Options are a proxy's connections to the world.
type Options struct {
	// Dial opens the connection to the app for one accepted client connection (the redirect
	// passes the connection's original destination, from SO_ORIGINAL_DST).
	Dial func(ctx context.Context, client net.Conn) (net.Conn, error)
	// Observe is called for every request the rule matcher sees with Seen, then with Aborted
	// and/or Delayed for the faulted ones. It must be quick and safe for concurrent use. May be
	// nil.
	Observe func(outcome string)
	Log     *slog.Logger
}

// Proxy forwards connections to the app and faults the requests its Rule picks.
type Proxy struct {
	m    *matcher
	dial func(context.Context, net.Conn) (net.Conn, error)
	log  *slog.Logger

	h2  *http2.Server
	hs  *http.Server // the h2 server's base config; its Shutdown sends GOAWAY on every h2 conn
	h2t *http2.Transport

	aborts [4][]byte // HTTP/1 abort answers: with a body or not (HEAD), keep-alive or close

	ctx      context.Context // cancelled when Shutdown gives up: every connection is closed
	cancel   context.CancelFunc
	shutting atomic.Bool

	mu    sync.Mutex
	lns   map[net.Listener]struct{}
	conns map[*conn]struct{}
	wg    sync.WaitGroup
}

// New checks the rule and returns a proxy for it.
func New(r Rule, o Options) (*Proxy, error) {
	if err := r.validate(); err != nil {
		return nil, fmt.Errorf("http fault rule: %w", err)
	}
	if len(r.Headers) > maxRuleHeaders {
		return nil, fmt.Errorf("http fault rule: %d headers: at most %d", len(r.Headers), maxRuleHeaders)
	}
	if o.Dial == nil {
		return nil, errors.New("proxy: no Dial")
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{
		m: newMatcher(r, o.Observe), dial: o.Dial, log: log,
		lns: map[net.Listener]struct{}{}, conns: map[*conn]struct{}{},
		h2:     &http2.Server{},
		hs:     &http.Server{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)},
		h2t:    &http2.Transport{AllowHTTP: true},
		aborts: makeAborts(r.httpStatus()),
	}
	if err := http2.ConfigureServer(p.hs, p.h2); err != nil {
		return nil, fmt.Errorf("proxy: http2: %w", err)
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return p, nil
}

// Serve accepts connections on ln until Shutdown, and then returns net.ErrClosed.
func (p *Proxy) Serve(ln net.Listener) error {
	p.mu.Lock()
	if p.shutting.Load() {
		p.mu.Unlock()
		ln.Close()
		return net.ErrClosed
	}
	p.lns[ln] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.lns, ln)
		p.mu.Unlock()
	}()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if p.shutting.Load() {
				return net.ErrClosed
			}
			// Out of descriptors, or a connection gone before it was accepted: worth a
			// retry, as net/http does, rather than the end of the fault.
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				p.log.Warn("proxy: accept", "err", err, "retry_in", delay)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("proxy: accept: %w", err)
		}
		delay = 0
		c := &conn{p: p, client: nc}
		if !p.track(c) {
			nc.Close()
			continue
		}
		go c.serve()
	}
}

// Shutdown stops accepting, lets in-flight requests finish (an HTTP/1 connection's last answer
// says Connection: close, an HTTP/2 one gets GOAWAY), closes idle connections, and gives raw
// TCP streams until ctx ends. Then it closes whatever is left and returns ctx's error.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	p.shutting.Store(true)
	for ln := range p.lns {
		ln.Close()
	}
	p.mu.Unlock()
	// No listener of hs: its Shutdown only runs the http2 hook that sends GOAWAY to the h2
	// connections served with it as base config, and returns.
	_ = p.hs.Shutdown(ctx)

	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		p.mu.Lock()
		n := len(p.conns)
		for c := range p.conns {
			c.closeIfIdle()
		}
		p.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			p.cancel()
			p.mu.Lock()
			for c := range p.conns {
				c.closeAll()
			}
			p.mu.Unlock()
			p.wg.Wait()
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func (p *Proxy) track(c *conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shutting.Load() {
		return false
	}
	p.conns[c] = struct{}{}
	p.wg.Add(1)
	return true
}

func (p *Proxy) untrack(c *conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	p.wg.Done()
}

// Kinds of connection, as sniffed.
const (
	kindSniffing int32 = iota
	kindHTTP1
	kindHTTP2
	kindRaw
)

// conn is one client connection and its upstream connection.
type conn struct {
	p      *Proxy
	client net.Conn
	up     net.Conn // nil until dialled
	kind   atomic.Int32
	// busy counts the HTTP/1 requests from their first byte to the end of their answer; -1
	// once Shutdown closed the connection as idle (a request arriving then is not started).
	busy atomic.Int32

	mu     sync.Mutex // guards up (set once dialled) and closed
	closed bool
}

// closeIfIdle closes a connection that has nothing in flight; Shutdown calls it repeatedly.
func (c *conn) closeIfIdle() {
	switch c.kind.Load() {
	case kindSniffing:
		// Not a byte from the client yet: an idle connection.
		c.closeAll()
	case kindHTTP1:
		if c.busy.CompareAndSwap(0, -1) {
			c.closeAll()
		}
	}
	// HTTP/2 drains by GOAWAY; raw streams are left until Shutdown's context ends.
}

func (c *conn) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.client.Close()
	if c.up != nil {
		c.up.Close()
	}
}

func (c *conn) serve() {
	defer c.p.untrack(c)
	defer c.closeAll()
	up, err := c.p.dial(c.p.ctx, c.client)
	if err != nil {
		c.p.log.Warn("proxy: dial the app", "client", c.client.RemoteAddr(), "err", err)
		return
	}
	c.mu.Lock()
	c.up = up
	closed := c.closed
	c.mu.Unlock()
	if closed {
		up.Close()
		return
	}
	cf, uf := &flushReader{Conn: c.client}, &flushReader{Conn: up}
	cr, ur := bufio.NewReaderSize(cf, bufSize), bufio.NewReaderSize(uf, bufSize)

	// Sniff: whichever side speaks first. A protocol whose server speaks first (SMTP, MySQL)
	// is spliced at once; otherwise the client's first bytes decide. The losing side's read
	// goes on and is awaited before its reader is used.
	cl, us := make(chan error, 1), make(chan error, 1)
	go func() { _, err := cr.Peek(1); cl <- err }()
	go func() { _, err := ur.Peek(1); us <- err }()
	select {
	case err = <-cl:
	case <-us:
		if !h2Settings(ur) {
			c.kind.Store(kindRaw)
			c.splice(cr, ur, cl, nil)
			return
		}
		// An HTTP/2 server says SETTINGS first, before the client's preface: still the
		// client's bytes decide.
		us <- nil
		err = <-cl
	}
	if err != nil {
		return
	}
	switch sniff(cr) {
	case kindHTTP1:
		c.kind.Store(kindHTTP1)
		c.serveHTTP1(cr, ur, cf, uf, us)
	case kindHTTP2:
		c.kind.Store(kindHTTP2)
		c.serveHTTP2(cr, ur, us)
	default:
		c.kind.Store(kindRaw)
		c.splice(cr, ur, nil, us)
	}
}

// h2Settings reports whether what the app said first is an HTTP/2 SETTINGS frame (RFC 9113
// §3.4: a server's preface, sent without waiting for the client's).
func h2Settings(r *bufio.Reader) bool {
	b, _ := r.Peek(r.Buffered())
	return len(b) >= 9 && b[3] == 0x4 && b[4]&^0x1 == 0 && b[5]|b[6]|b[7]|b[8] == 0 && (int(b[0])<<16|int(b[1])<<8|int(b[2]))%6 == 0
}

// bufSize is the size of each connection's read buffers, and so the largest HTTP/1 head the
// proxy parses (a larger one turns the connection into a plain splice).
const bufSize = 16 << 10

// flushReader flushes w before it reads from the connection: whatever was written for the
// other side goes out before the proxy waits for more, and only then, so that a message read
// in one piece is forwarded in one write.
type flushReader struct {
	net.Conn
	w *bufio.Writer // set before the reader is used in HTTP/1 mode
}

func (f *flushReader) Read(p []byte) (int, error) {
	if f.w != nil && f.w.Buffered() > 0 {
		if err := f.w.Flush(); err != nil {
			return 0, err
		}
	}
	return f.Conn.Read(p)
}

// h2Preface is the HTTP/2 client connection preface (RFC 9113 §3.4): prior knowledge h2c.
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// maxMethod bounds the method sniffed on a first line (the longest registered one is 17).
const maxMethod = 24

// sniff reads as much of the client's first bytes as it needs to tell HTTP/1, HTTP/2 (h2c
// with prior knowledge) and anything else apart; it never waits for bytes a protocol would
// not send unprompted.
func sniff(r *bufio.Reader) int32 {
	for {
		b, _ := r.Peek(r.Buffered())
		n := min(len(b), len(h2Preface))
		if string(b[:n]) == h2Preface[:n] {
			if n == len(h2Preface) {
				return kindHTTP2
			}
		} else {
			i := 0
			for i < len(b) && i < maxMethod && tchar[b[i]] {
				i++
			}
			switch {
			case i < len(b) && b[i] == ' ' && i > 0:
				return kindHTTP1 // the rest is checked line by line as it comes
			case i < len(b) || i == maxMethod:
				return kindRaw
			}
		}
		if _, err := r.Peek(len(b) + 1); err != nil {
			return kindRaw
		}
	}
}

// splice copies both ways until each side has closed. clientFirst/upFirst, when not nil, are
// the sniffing reads still under way on that side's reader, awaited before its copy.
func (c *conn) splice(cr, ur *bufio.Reader, clientPending, upPending chan error) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if clientPending != nil {
			<-clientPending
		}
		pipe(c.up, c.client, cr)
	}()
	if upPending != nil {
		<-upPending
	}
	pipe(c.client, c.up, ur)
	wg.Wait()
}

// pipe copies what r has buffered, then the rest of src, to dst; then half-closes dst so
// that its peer sees the end of the stream.
func pipe(dst, src net.Conn, r *bufio.Reader) {
	if n := r.Buffered(); n > 0 {
		b, _ := r.Peek(n)
		if _, err := dst.Write(b); err != nil {
			return
		}
		r.Discard(n)
	}
	// Both are TCP connections in production: io.Copy splices in the kernel.
	if _, err := io.Copy(dst, src); err == nil {
		closeWrite(dst)
		return
	}
	dst.Close()
	src.Close()
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}
