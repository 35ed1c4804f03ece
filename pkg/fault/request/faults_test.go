package request

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/pkg/fault"
	"github.com/chaoscron/chaoscron/pkg/fault/request/internal/nstest"
)

// counter counts the fault's Observe events.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) observe(ev string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[ev]++
}

func (c *counter) get(ev string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[ev]
}

// binomial fails unless k of n is within 5 standard deviations of n×p: a correct fault
// fails this about once in 3.5 million runs.
func binomial(t *testing.T, what string, k, n int, p float64) {
	t.Helper()
	mean, sd := float64(n)*p, math.Sqrt(float64(n)*p*(1-p))
	if math.Abs(float64(k)-mean) > 5*sd {
		t.Errorf("%s: %d of %d, want %.0f ± %.0f (5 sd of a binomial with p = %v)", what, k, n, mean, 5*sd, p)
	}
}

// TestAbortPercent: 30% of matching requests (POST /api/orders*) are answered 503 by the
// proxy, the others reach the app; requests that do not match (another method, another
// path, a missing header) are never aborted. Keep-alive and a connection per request alike.
func TestAbortPercent(t *testing.T) {
	cl, pod := nstest.Pair(t)
	app(t, pod, 8080)
	var seen counter
	seen.n = map[string]int{}
	env := testEnv()
	env.Observe = seen.observe
	ff, err := New(fault.Params{"port": 8080, "netns": pod.Path, "methods": []any{"post"}, "path": "/api/orders",
		"headers": map[string]any{"x-user": map[string]any{"prefix": "qa-"}}, "percent": 30, "abort": 503}, env)
	if err != nil {
		t.Fatal(err)
	}
	inject(t, ff.(*Fault))
	url := "http://" + nstest.PodIP + ":8080"
	do := func(c *http.Client, method, path, user string) (int, string) {
		req, _ := http.NewRequest(method, url+path, strings.NewReader("body"))
		if user != "" {
			req.Header.Set("X-User", user)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	const n = 300
	aborted := 0
	for i := range n {
		c := client(cl, i%2 == 0) // half over one kept-alive connection, half fresh
		code, body := do(c, "POST", "/api/orders/42", "qa-ann")
		switch {
		case code == 503 && body == "fault filter abort":
			aborted++
		case code == 200 && body == "app /api/orders/42 from "+nstest.PodIP:
		default:
			t.Fatalf("request %d: %d %q", i, code, body)
		}
	}
	binomial(t, "aborted", aborted, n, 0.3)
	if got := seen.get("aborted"); got != aborted {
		t.Errorf("Observe counted %d aborted, the client saw %d", got, aborted)
	}
	c := client(cl, true)
	for _, r := range []struct{ method, path, user string }{
		{"GET", "/api/orders/42", "qa-ann"}, {"POST", "/api/users", "qa-ann"}, {"POST", "/api/orders", ""}, {"POST", "/api/orders", "ann"},
	} {
		for range 20 {
			if code, _ := do(c, r.method, r.path, r.user); code != 200 {
				t.Fatalf("%s %s (x-user %q), which does not match: %d", r.method, r.path, r.user, code)
			}
		}
	}
	if got, want := seen.get("seen"), n+80; got != want {
		t.Errorf("Observe counted %d seen, want %d", got, want)
	}
}

// TestDelayPercent: half of the requests are held 300ms (± 50ms) before they go on; the
// others are not. A delayed request takes at least 250ms; the count of those is checked
// against its binomial bounds, and unmatched bodies arrive byte for byte.
func TestDelayPercent(t *testing.T) {
	cl, pod := nstest.Pair(t)
	app(t, pod, 8080)
	var seen counter
	seen.n = map[string]int{}
	env := testEnv()
	env.Observe = seen.observe
	ff, err := New(fault.Params{"port": 8080, "netns": pod.Path, "path_regex": "/echo", "percent": 50, "delay": "300ms", "jitter": "50ms"}, env)
	if err != nil {
		t.Fatal(err)
	}
	inject(t, ff.(*Fault))
	c := client(cl, true)
	const n = 60
	slow := 0
	for i := range n {
		body := bytes.Repeat([]byte(fmt.Sprintf("%d,", i)), 1000)
		start := time.Now()
		resp, err := c.Post("http://"+nstest.PodIP+":8080/echo", "text/plain", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !bytes.Equal(got, body) {
			t.Fatalf("request %d: body differs: %d bytes back of %d: %.100q", i, len(got), len(body), got)
		}
		if time.Since(start) >= 250*time.Millisecond {
			slow++
		}
	}
	// Delayed requests always take ≥ 250ms; an undelayed one only on a very busy machine, so
	// the delayed count can only be overstated by noise: the observed count is the figure.
	delayed := seen.get("delayed")
	binomial(t, "delayed", delayed, n, 0.5)
	if slow < delayed {
		t.Errorf("%d requests took ≥ 250ms, but %d were delayed by 250ms or more", slow, delayed)
	}
	if seen.get("aborted") != 0 {
		t.Errorf("%d aborted: the fault only delays", seen.get("aborted"))
	}
}
