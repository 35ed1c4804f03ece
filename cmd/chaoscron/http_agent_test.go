package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestHTTPFaultAgent: a real agent runs the http fault on an app in a "pod" namespace; a
// client in another namespace, over a veth pair, sends real requests. 40% of them are
// answered 503 by the agent's proxy (within 5 standard deviations of the binomial), the
// agent's metrics count exactly what the client saw, and after SIGTERM the redirect is gone
// and every request reaches the app.
func TestHTTPFaultAgent(t *testing.T) {
	pod, _, tables := httpNetns(t)
	cl, _, _ := httpNetns(t)
	pid := func(path string) string { return strings.Split(path, "/")[2] }
	if out, err := exec.Command("ip", "link", "add", "hc", "netns", pid(cl), "type", "veth", "peer", "name", "hp", "netns", pid(pod)).CombinedOutput(); err != nil {
		t.Fatalf("ip link add: %s: %v", out, err)
	}
	for _, ns := range []struct{ path, dev, addr string }{{cl, "hc", "10.78.0.1/24"}, {pod, "hp", "10.78.0.2/24"}} {
		if out, err := exec.Command("nsenter", "--net="+ns.path, "sh", "-ec",
			fmt.Sprintf("ip addr add %s dev %s && ip link set %s up && ip link set lo up", ns.addr, ns.dev, ns.dev)).CombinedOutput(); err != nil {
			t.Fatalf("%s: %s: %v", ns.dev, out, err)
		}
	}
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "app")
	})}
	appLn := listenIn(t, pod, ":8090")
	go func() { _ = app.Serve(appLn) }()
	t.Cleanup(func() { app.Close() })

	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := writeConfig(t, dir, fmt.Sprintf(`
agent: {listen: %q}
journal: {path: %s/j.db}
experiments:
  - name: web-errors
    schedule: "@every 1s"
    duration: 1h
    fault: {type: http, port: 8090, netns: %s, percent: 40, abort: 503}
`, addr, dir, pod))
	a := startAgent(t, dir, "-c", cfg)
	eventually(t, 10*time.Second, "the redirect to be in place", func() bool { return len(tables()) == 1 })

	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (conn net.Conn, err error) {
			err = inNetnsErr(cl, func() (err error) {
				conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return conn, err
		},
	}}
	get := func() (int, string) {
		resp, err := c.Get("http://10.78.0.2:8090/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	const n = 200
	aborted := 0
	for i := range n {
		switch code, body := get(); {
		case code == 503 && body == "fault filter abort":
			aborted++
		case code == 200 && body == "app":
		default:
			t.Fatalf("request %d: %d %q", i, code, body)
		}
	}
	if sd := math.Sqrt(n * 0.4 * 0.6); math.Abs(float64(aborted)-n*0.4) > 5*sd {
		t.Errorf("%d of %d aborted, want %v ± %.0f", aborted, n, n*0.4, 5*sd)
	}
	_, fams := scrape(t, addr)
	for outcome, want := range map[string]float64{"seen": n, "aborted": float64(aborted), "delayed": 0} {
		if got := metric(fams, "chaos_http_requests_total", "experiment=web-errors", "outcome="+outcome); got != want {
			t.Errorf("chaos_http_requests_total{outcome=%q} = %v, want %v", outcome, got, want)
		}
	}

	if code := a.stop(); code != 0 {
		t.Fatalf("agent exit %d; log:\n%s", code, a.log)
	}
	if ts := tables(); len(ts) != 0 {
		t.Fatalf("tables after SIGTERM: %v", ts)
	}
	for i := range 20 {
		if code, body := get(); code != 200 || body != "app" {
			t.Fatalf("request %d after the agent stopped: %d %q", i, code, body)
		}
	}
}
