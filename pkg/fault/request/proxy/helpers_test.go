package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"
)

// startApp serves h on a loopback port, like the app next to the agent, and returns its address.
func startApp(t testing.TB, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// startProxy runs a proxy for r in front of the app at app and returns its address.
func startProxy(t testing.TB, r Rule, app string, o Options) (string, *Proxy) {
	t.Helper()
	if o.Dial == nil {
		o.Dial = dialTo(app)
	}
	p, err := New(r, o)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- p.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, net.ErrClosed) {
			t.Errorf("Serve returned %v, want net.ErrClosed", err)
		}
	})
	return ln.Addr().String(), p
}

func dialTo(addr string) func(context.Context, net.Conn) (net.Conn, error) {
	var d net.Dialer
	return func(ctx context.Context, _ net.Conn) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", addr)
	}
}

// client is an HTTP/1.1 client with its own connection pool.
func client() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
}
