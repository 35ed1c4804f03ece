package request

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/chaoscron/chaoscron/pkg/fault"
	"github.com/chaoscron/chaoscron/pkg/fault/request/internal/nstest"
)

// inject plans and injects f, and reverts it at the end of the test.
func inject(t *testing.T, f *Fault) fault.Undo {
	t.Helper()
	plan, err := f.Plan(context.Background(), fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	u, err := f.Inject(context.Background(), plan)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Revert(context.Background(), u); err != nil {
			t.Error(err)
		}
	})
	return u
}

// TestRawTCP: a protocol that is not HTTP on the faulted port passes unharmed, both a
// server that speaks first (a banner, as SMTP or MySQL send) and binary client data echoed
// byte for byte.
func TestRawTCP(t *testing.T) {
	cl, pod := nstest.Pair(t)
	ln := pod.Listen(t, ":8090")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.WriteString(c, "220 raw banner\r\n")
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	inject(t, newFault(t, fault.Params{"port": 8090, "netns": pod.Path, "abort": 503, "delay": "10ms"}))

	c, err := cl.Dial(context.Background(), nstest.PodIP+":8090")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	if banner, err := r.ReadString('\n'); banner != "220 raw banner\r\n" {
		t.Fatalf("banner: %q %v, want the server's, sent before the client says anything", banner, err)
	}
	data := make([]byte, 256<<10)
	_, _ = rand.Read(data)
	data[0] = 0 // not an HTTP request line
	go func() { _, _ = c.Write(data) }()
	got := make([]byte, len(data))
	if _, err := io.ReadFull(r, got); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("echo: %v, equal %v: want the %d bytes back, byte for byte", err, bytes.Equal(got, data), len(data))
	}
}

// TestWebSocket: an upgrade through the proxy is answered by the app and the connection
// carries the app's protocol afterwards, in both directions.
func TestWebSocket(t *testing.T) {
	cl, pod := nstest.Pair(t)
	ln := pod.Listen(t, ":8080")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want an upgrade", http.StatusBadRequest)
			return
		}
		c, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n")
		_ = rw.Flush()
		// Echo frames as opaque bytes, line by line, upper-cased: proof the app answered.
		for {
			l, err := rw.ReadString('\n')
			if err != nil {
				return
			}
			_, _ = rw.WriteString(strings.ToUpper(l))
			_ = rw.Flush()
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	// Only /api is faulted; the upgrade is on /ws.
	inject(t, newFault(t, fault.Params{"port": 8080, "netns": pod.Path, "path": "/api", "abort": 503}))

	c, err := cl.Dial(context.Background(), nstest.PodIP+":8080")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: app\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	for _, msg := range []string{"hello\n", "GET /api HTTP/1.1 is just data now\n"} {
		_, _ = io.WriteString(c, msg)
		if got, err := r.ReadString('\n'); got != strings.ToUpper(msg) {
			t.Fatalf("after the upgrade: %q %v, want %q", got, err, strings.ToUpper(msg))
		}
	}
}

// TestGRPC: a real gRPC server (the health service) and client over h2c. With the fault
// aborting every call with UNAVAILABLE the client gets that status from the proxy; a fault
// on another path lets every call through.
func TestGRPC(t *testing.T) {
	cl, pod := nstest.Pair(t)
	ln := pod.Listen(t, ":9090")
	gs := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("shop", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)

	call := func() error {
		conn, err := grpc.NewClient(nstest.PodIP+":9090",
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) { return cl.Dial(ctx, addr) }))
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "shop"})
		if err == nil && resp.Status != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("status %v", resp.Status)
		}
		return err
	}
	for _, tc := range []struct {
		name   string
		params fault.Params
		want   codes.Code
	}{
		{"other path", fault.Params{"path": "/shop.v1.Orders/", "grpc_status": 14}, codes.OK},
		{"health aborted", fault.Params{"path": "/grpc.health.v1.Health/", "grpc_status": "UNAVAILABLE"}, codes.Unavailable},
		{"by number", fault.Params{"grpc_status": 7}, codes.PermissionDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := fault.Params{"port": 9090, "netns": pod.Path}
			for k, v := range tc.params {
				p[k] = v
			}
			var seen counter
			seen.n = map[string]int{}
			env := testEnv()
			env.Observe = seen.observe
			ff, err := New(p, env)
			if err != nil {
				t.Fatal(err)
			}
			f := ff.(*Fault)
			u := inject(t, f)
			for i := range 5 {
				if got := status.Code(call()); got != tc.want {
					t.Fatalf("call %d: %v, want %v (the proxy has seen %d requests)", i, got, tc.want, seen.get("seen"))
				}
			}
			if err := f.Revert(context.Background(), u); err != nil {
				t.Fatal(err)
			}
			if err := call(); err != nil {
				t.Fatalf("after revert: %v", err)
			}
		})
	}
}
