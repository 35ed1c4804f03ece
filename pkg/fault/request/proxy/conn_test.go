package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// dial opens a raw client connection to addr with a deadline that keeps a broken test short.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// TestPipelinedWithAbort: three requests in one write, the middle one aborted, with a body the
// proxy must read and drop: three answers, in order, on one connection.
func TestPipelinedWithAbort(t *testing.T) {
	var app echoApp
	addr, _ := startProxy(t, Rule{Path: "/abort", Percent: 100, Abort: 429}, app.start(t), Options{})
	c := dial(t, addr)
	big := strings.Repeat("x", 100000)
	io.WriteString(c, "POST /one HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\none"+
		"POST /abort HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n186a0\r\n"+big+"\r\n0\r\n\r\n"+
		"POST /three HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nthree")
	r := bufio.NewReader(c)
	for _, want := range []struct {
		status int
		body   string
	}{{200, "one"}, {429, abortBody}, {200, "three"}} {
		res, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != want.status || string(b) != want.body {
			t.Errorf("answer %d %q, want %d %q", res.StatusCode, b, want.status, want.body)
		}
	}
	if app.conns.Load() != 1 {
		t.Errorf("the app saw %d connections, want 1", app.conns.Load())
	}
}

// TestAbortExpectContinue: a body held back for 100 Continue is never asked for; the abort
// answer says Connection: close and the connection ends cleanly.
func TestAbortExpectContinue(t *testing.T) {
	var app echoApp
	addr, _ := startProxy(t, Rule{Percent: 100, Abort: 503}, app.start(t), Options{})
	c := dial(t, addr)
	io.WriteString(c, "PUT /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1000000\r\n\r\n")
	r := bufio.NewReader(c)
	res, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 503 || !res.Close {
		t.Errorf("answer %d, close %v; want 503, close", res.StatusCode, res.Close)
	}
	io.ReadAll(res.Body)
	if _, err := r.ReadByte(); err != io.EOF {
		t.Errorf("after the answer: %v, want EOF", err)
	}
}

// TestExpectContinueForwarded: the app's 100 Continue reaches the client, which only then
// sends the body.
func TestExpectContinueForwarded(t *testing.T) {
	var app echoApp
	addr, _ := startProxy(t, Rule{Path: "/none", Percent: 100, Abort: 503}, app.start(t), Options{})
	c := dial(t, addr)
	io.WriteString(c, "PUT /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("first line %q, %v; want 100 Continue", line, err)
	}
	r.ReadString('\n')
	io.WriteString(c, "body")
	res, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(res.Body); string(b) != "body" {
		t.Errorf("echo %q", b)
	}
}

func TestShutdownDrains(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	app := startApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started <- struct{}{}
			<-release
		}
		io.WriteString(w, "done "+r.URL.Path)
	}))
	p, err := New(Rule{}, Options{Dial: dialTo(app)})
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	served := make(chan error, 1)
	go func() { served <- p.Serve(ln) }()

	busy, idle := dial(t, ln.Addr().String()), dial(t, ln.Addr().String())
	// The idle one has had a request and its answer: keep-alive, nothing in flight.
	io.WriteString(idle, "GET /quick HTTP/1.1\r\nHost: a\r\n\r\n")
	ir := bufio.NewReader(idle)
	if res, err := http.ReadResponse(ir, nil); err != nil || res.StatusCode != 200 {
		t.Fatalf("idle connection's request: %v", err)
	} else {
		io.ReadAll(res.Body)
	}
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	<-started

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- p.Shutdown(ctx)
	}()
	// The idle connection is closed at once; the busy one waits for its answer.
	if _, err := ir.ReadByte(); err != io.EOF {
		t.Errorf("idle connection after Shutdown: %v, want EOF", err)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Error("the proxy still accepts after Shutdown")
	}
	close(release)
	br := bufio.NewReader(busy)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || string(b) != "done /slow" || !res.Close {
		t.Errorf("in-flight answer %d %q close=%v, want 200 \"done /slow\" with Connection: close", res.StatusCode, b, res.Close)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("busy connection after its last answer: %v, want EOF", err)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Serve: %v, want net.ErrClosed", err)
	}
}

// TestShutdownRawUntilDeadline: a raw TCP stream is left alone until Shutdown's context ends,
// then closed.
func TestShutdownRawUntilDeadline(t *testing.T) {
	app := startEcho(t, nil)
	p, err := New(Rule{}, Options{Dial: dialTo(app)})
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go p.Serve(ln)
	c := dial(t, ln.Addr().String())
	echoes(t, c, []byte{0, 1, 2, 3})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- p.Shutdown(ctx) }()
	time.Sleep(50 * time.Millisecond)
	echoes(t, c, []byte("still there"))
	if err := <-errc; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want the context's deadline", err)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("the raw stream is still open after Shutdown's deadline")
	}
}

// startEcho serves a plain TCP echo; banner, if not nil, is sent first (a protocol whose
// server speaks first).
func startEcho(t *testing.T, banner []byte) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if banner != nil {
					c.Write(banner)
				}
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func echoes(t *testing.T, c net.Conn, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(b))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, b) {
		t.Fatalf("echo %q, %v; want %q", got, err, b)
	}
}

func TestRawTCP(t *testing.T) {
	random := make([]byte, 1<<20)
	for i := range random {
		random[i] = byte(rand.Uint32())
	}
	tests := []struct {
		name   string
		banner string
		first  []byte
	}{
		{"binary", "", random},
		{"line protocol that starts like a method", "", []byte("SET key value\r\nGET key\r\n")},
		{"server speaks first", "220 smtp ready\r\n", []byte("EHLO me\r\n")},
		{"almost the h2 preface", "", []byte("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")},
		{"tls-like", "", []byte{0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var banner []byte
			if tt.banner != "" {
				banner = []byte(tt.banner)
			}
			addr, _ := startProxy(t, Rule{Percent: 100, Abort: 500}, startEcho(t, banner), Options{})
			c := dial(t, addr)
			if banner != nil {
				got := make([]byte, len(banner))
				if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, banner) {
					t.Fatalf("banner %q, %v", got, err)
				}
			}
			go c.Write(tt.first)
			got := make([]byte, len(tt.first))
			if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, tt.first) {
				t.Fatalf("echo differs (%v)", err)
			}
			echoes(t, c, []byte("and more"))
			c.(*net.TCPConn).CloseWrite()
			if _, err := c.Read(make([]byte, 1)); err != io.EOF {
				t.Errorf("after the client's half close: %v, want EOF", err)
			}
		})
	}
}

// TestWebSocket: an Upgrade handshake answered 101, then raw frames both ways through the
// proxy (after an aborted and a forwarded request on the same connection).
func TestWebSocket(t *testing.T) {
	app := startApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			io.WriteString(w, "plain")
			return
		}
		c, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
		rw.Flush()
		io.Copy(c, rw) // echo whatever comes, frames or not
	}))
	addr, _ := startProxy(t, Rule{Path: "/abort", Percent: 100, Abort: 503}, app, Options{})
	c := dial(t, addr)
	r := bufio.NewReader(c)
	for _, path := range []string{"/abort", "/plain"} {
		io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: a\r\n\r\n")
		res, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(res.Body)
	}
	io.WriteString(c, "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	res, err := http.ReadResponse(r, nil)
	if err != nil || res.StatusCode != 101 {
		t.Fatalf("handshake: %v, %v", res, err)
	}
	// A masked text frame "hello", then bytes that are no HTTP at all.
	frame := []byte{0x81, 0x85, 1, 2, 3, 4, 'h' ^ 1, 'e' ^ 2, 'l' ^ 3, 'l' ^ 4, 'o' ^ 1, 0, 0xff, '\n', '\n'}
	c.Write(frame)
	got := make([]byte, len(frame))
	if _, err := io.ReadFull(r, got); err != nil || !bytes.Equal(got, frame) {
		t.Fatalf("echo %x, %v; want %x", got, err, frame)
	}
}
