package proxy

import (
	"bytes"
	"io"
	"net"
	"regexp"
	"testing"
	"time"
)

// FuzzHTTP1 sends arbitrary bytes through the proxy with a rule that matches everything but
// never faults (percent 0): whatever the sniffing and the HTTP/1 parser make of them, the app
// must receive exactly the bytes sent, and the connection must end when both sides have
// closed. (h2c is left out: HTTP/2 is re-framed by design.)
func FuzzHTTP1(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /y HTTP/1.0\r\n\r\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nTrailer: x\r\n\r\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
		"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x00",
		"GET / HTTP/1.1\r\n folded: x\r\n\r\n",
		"SET a b\r\n",
		"GET /\n\n",
		"\x16\x03\x01\x00",
		"CONNECT host:443 HTTP/1.1\r\n\r\nraw",
	} {
		f.Add([]byte(s))
	}
	got := make(chan []byte, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			b, _ := io.ReadAll(c)
			c.Close()
			got <- b
		}
	}()
	p, err := New(Rule{Path: "/", Headers: map[string]*regexp.Regexp{"Host": regexp.MustCompile(`.`)}, Percent: 0, Abort: 500},
		Options{Dial: dialTo(ln.Addr().String())})
	if err != nil {
		f.Fatal(err)
	}
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	go p.Serve(pl)
	defer pl.Close()

	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 || bytes.HasPrefix(data, []byte(h2Preface)) {
			return
		}
		c, err := net.Dial("tcp", pl.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(data); err != nil {
			t.Fatal(err)
		}
		c.(*net.TCPConn).CloseWrite()
		var b []byte
		select {
		case b = <-got:
		case <-time.After(5 * time.Second):
			t.Fatalf("the app did not see the end of the stream for %q", data)
		}
		if !bytes.Equal(b, data) {
			t.Fatalf("the app received %q, sent %q", b, data)
		}
		if _, err := io.ReadAll(c); err != nil {
			t.Fatalf("the client's side did not end cleanly: %v", err)
		}
	})
}

// FuzzParse: the parsers never panic and never claim more bytes than they were given.
func FuzzParse(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"))
	names := []header{{name: "Host"}, {name: "X-A"}}
	f.Fuzz(func(t *testing.T, b []byte) {
		if h, err := parseRequest(b, names); err == nil && (h.n > len(b) || h.length < 0) {
			t.Fatalf("request head of %d bytes (length %d) in %d", h.n, h.length, len(b))
		}
		if h, err := parseResponse(b); err == nil && h.n > len(b) {
			t.Fatalf("response head of %d bytes in %d", h.n, len(b))
		}
		chunkSize(b)
	})
}
