package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// startGRPC serves gRPC's health service, and "/test.Slow/Call", which answers after 300 ms.
func startGRPC(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, st grpc.ServerStream) error {
		var req healthpb.HealthCheckRequest
		if err := st.RecvMsg(&req); err != nil {
			return err
		}
		time.Sleep(300 * time.Millisecond)
		return st.SendMsg(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING})
	}))
	healthpb.RegisterHealthServer(s, health.NewServer())
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	return ln.Addr().String()
}

func grpcClient(t *testing.T, addr string) healthpb.HealthClient {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return healthpb.NewHealthClient(cc)
}

func TestGRPC(t *testing.T) {
	app := startGRPC(t)
	tests := []struct {
		name string
		rule Rule
		want codes.Code
	}{
		{"unmatched passes", Rule{Path: "/other", Percent: 100, Abort: 503}, codes.OK},
		{"abort 503 is UNAVAILABLE", Rule{Path: "/grpc.health.v1.Health/", Percent: 100, Abort: 503}, codes.Unavailable},
		{"abort 404 is UNIMPLEMENTED", Rule{Path: "/grpc.health.v1.Health/", Percent: 100, Abort: 404}, codes.Unimplemented},
		{"grpc status given", Rule{Path: "/grpc.health.v1.Health/Check", Percent: 100, GRPC: int(codes.PermissionDenied)}, codes.PermissionDenied},
		{"delay only", Rule{Percent: 100, Delay: 50 * time.Millisecond}, codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, _ := startProxy(t, tt.rule, app, Options{})
			hc := grpcClient(t, addr)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			t0 := time.Now()
			res, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
			if got := status.Code(err); got != tt.want {
				t.Fatalf("Check: %v, want %v", err, tt.want)
			}
			if took := time.Since(t0); took < tt.rule.Delay {
				t.Errorf("Check took %v, less than the delay %v", took, tt.rule.Delay)
			}
			if tt.want != codes.OK {
				if msg := status.Convert(err).Message(); msg != abortBody {
					t.Errorf("message %q, want %q", msg, abortBody)
				}
				return
			}
			if res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("status %v", res.GetStatus())
			}
			// A server stream: its first message comes through as it is sent.
			w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if m, err := w.Recv(); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("Watch: %v, %v", m, err)
			}
			// An error status in trailers (a trailers-only answer) comes through as it is.
			_, err = hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"})
			if status.Code(err) != codes.NotFound {
				t.Errorf("Check of an unknown service: %v, want NotFound", err)
			}
		})
	}
}

func TestGRPCPercent(t *testing.T) {
	var cnt counter
	addr, _ := startProxy(t, Rule{Percent: 40, Abort: 503, Seed: 3}, startGRPC(t), Options{Observe: cnt.observe})
	hc := grpcClient(t, addr)
	const n = 2000
	aborted := 0
	for range n {
		_, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{})
		switch status.Code(err) {
		case codes.Unavailable:
			aborted++
		case codes.OK:
		default:
			t.Fatal(err)
		}
	}
	within(t, "aborted", aborted, n, 0.4)
	if cnt.get(Aborted) != aborted || cnt.get(Seen) != n {
		t.Errorf("observed %v, want %d aborted of %d", cnt.n, aborted, n)
	}
}

// TestGRPCShutdown: a call in flight when Shutdown starts finishes; Shutdown waits for it and
// then returns (the client got GOAWAY).
func TestGRPCShutdown(t *testing.T) {
	p, err := New(Rule{}, Options{Dial: dialTo(startGRPC(t))})
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go p.Serve(ln)
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	call := make(chan error, 1)
	var res healthpb.HealthCheckResponse
	go func() {
		call <- cc.Invoke(context.Background(), "/test.Slow/Call", &healthpb.HealthCheckRequest{}, &res)
	}()
	time.Sleep(100 * time.Millisecond) // the call is on its way
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case err := <-call:
		if err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("the call in flight: %v, %v", res.GetStatus(), err)
		}
	default:
		t.Error("Shutdown returned before the call in flight had its answer")
	}
}

// TestH2C: plain HTTP/2 with prior knowledge, not gRPC: aborts with the HTTP status, passes
// the rest with its trailers.
func TestH2C(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
		w.Header().Set("X-Sum", "done")
	})}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetUnencryptedHTTP2(true)
	go srv.Serve(ln)
	defer srv.Close()
	addr, _ := startProxy(t, Rule{Path: "/abort", Percent: 100, Abort: 418}, ln.Addr().String(), Options{})
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	c := &http.Client{Transport: tr}
	res, err := c.Post("http://"+addr+"/abort", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 418 || string(b) != abortBody || res.ProtoMajor != 2 {
		t.Errorf("aborted: %s %d %q", res.Proto, res.StatusCode, b)
	}
	res, err = c.Post("http://"+addr+"/echo", "text/plain", io.MultiReader(bytesReader("ping")))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(res.Body)
	if res.StatusCode != 200 || string(b) != "ping" || res.Trailer.Get("X-Sum") != "done" {
		t.Errorf("passed: %d %q trailer %v", res.StatusCode, b, res.Trailer)
	}
}

func bytesReader(s string) io.Reader { return &onceReader{s: s} }

type onceReader struct{ s string }

func (o *onceReader) Read(p []byte) (int, error) {
	if o.s == "" {
		return 0, io.EOF
	}
	n := copy(p, o.s)
	o.s = o.s[n:]
	return n, nil
}
