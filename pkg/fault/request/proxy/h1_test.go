package proxy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// counter counts Observe's outcomes.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) observe(o string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[o]++
}

func (c *counter) get(o string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[o]
}

// within fails unless k of n is within 5 standard deviations of the binomial mean for p: wide
// enough never to flake, narrow enough to catch a wrong percentage (at n = 2,000, p = 0.3:
// ±102, where 25% or 35% would be 100 away).
func within(t *testing.T, what string, k, n int, p float64) {
	t.Helper()
	mean, sd := float64(n)*p, math.Sqrt(float64(n)*p*(1-p))
	if math.Abs(float64(k)-mean) > 5*sd {
		t.Errorf("%s: %d of %d, want %.0f ± %.0f (5σ)", what, k, n, mean, 5*sd)
	}
}

func TestAbortPercent(t *testing.T) {
	app := startApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "app") }))
	var cnt counter
	addr, _ := startProxy(t, Rule{Percent: 30, Abort: 503, Seed: 7}, app, Options{Observe: cnt.observe})
	c := client()
	const n = 2000
	aborted := 0
	for range n {
		res, err := c.Get("http://" + addr + "/orders")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		switch {
		case res.StatusCode == 503 && string(b) == abortBody:
			aborted++
		case res.StatusCode == 200 && string(b) == "app":
		default:
			t.Fatalf("answer %d %q", res.StatusCode, b)
		}
	}
	within(t, "aborted", aborted, n, 0.3)
	if cnt.get(Seen) != n || cnt.get(Aborted) != aborted || cnt.get(Delayed) != 0 {
		t.Errorf("observed %v, want seen %d, aborted %d", cnt.n, n, aborted)
	}
}

func TestDelayPercent(t *testing.T) {
	app := startApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "app") }))
	var cnt counter
	const delay, jitter = 60 * time.Millisecond, 20 * time.Millisecond
	addr, _ := startProxy(t, Rule{Percent: 25, Delay: delay, Jitter: jitter}, app, Options{Observe: cnt.observe})
	const n, conc = 2016, 32
	var slow atomic.Int64
	var wg sync.WaitGroup
	for g := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := client()
			for range n / conc {
				t0 := time.Now()
				res, err := c.Get(fmt.Sprintf("http://%s/search?g=%d", addr, g))
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					t.Errorf("status %d", res.StatusCode)
				}
				if time.Since(t0) >= delay-jitter {
					slow.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	delayed := cnt.get(Delayed)
	within(t, "delayed", delayed, n, 0.25)
	// Every delayed request took at least the delay less the jitter (a lower bound, so timing
	// noise can only add slow ones, never fail this).
	if int(slow.Load()) < delayed {
		t.Errorf("%d requests took ≥ %v, but %d were delayed", slow.Load(), delay-jitter, delayed)
	}
	if cnt.get(Seen) != n || cnt.get(Aborted) != 0 {
		t.Errorf("observed %v", cnt.n)
	}
}

// echoApp answers every request with its body, and records the hash of each body it read.
type echoApp struct {
	mu     sync.Mutex
	hashes map[string]bool
	conns  atomic.Int64
}

func (e *echoApp) start(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.hashes = map[string]bool{}
	srv := &http.Server{Handler: e, ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			e.conns.Add(1)
		}
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func (e *echoApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	sum := sha256.Sum256(b)
	e.mu.Lock()
	e.hashes[string(sum[:])] = true
	e.mu.Unlock()
	if r.URL.Query().Get("chunked") != "" {
		// Pieces with a flush between: a chunked answer with many chunks.
		for len(b) > 0 {
			k := min(len(b), 1+rand.IntN(40000))
			w.Write(b[:k])
			w.(http.Flusher).Flush()
			b = b[k:]
		}
		return
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	w.Write(b)
}

func (e *echoApp) saw(b []byte) bool {
	sum := sha256.Sum256(b)
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.hashes[string(sum[:])]
}

func TestUnmatchedBytes(t *testing.T) {
	var app echoApp
	addr, _ := startProxy(t, Rule{Path: "/faulted", Percent: 100, Abort: 500}, app.start(t), Options{})
	c := client()
	for _, size := range []int{0, 1, 1000, 70000, 3 << 20} {
		for _, reqChunked := range []bool{false, true} {
			for _, respChunked := range []bool{false, true} {
				t.Run(fmt.Sprintf("size=%d/req-chunked=%v/resp-chunked=%v", size, reqChunked, respChunked), func(t *testing.T) {
					body := make([]byte, size)
					for i := range body {
						body[i] = byte(rand.Uint32())
					}
					var rd io.Reader = bytes.NewReader(body)
					if reqChunked {
						rd = io.MultiReader(rd) // unknown length: the client sends it chunked
					}
					url := "http://" + addr + "/echo"
					if respChunked {
						url += "?chunked=1"
					}
					req, _ := http.NewRequest("POST", url, rd)
					res, err := c.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					got, err := io.ReadAll(res.Body)
					res.Body.Close()
					if err != nil || res.StatusCode != 200 {
						t.Fatalf("status %d, %v", res.StatusCode, err)
					}
					if respChunked != (res.ContentLength < 0) && size > 0 {
						t.Errorf("answer framing: content length %d, want chunked %v", res.ContentLength, respChunked)
					}
					if !app.saw(body) {
						t.Error("the app did not read the body that was sent")
					}
					if !bytes.Equal(got, body) {
						t.Errorf("the answer's body differs (%d bytes, sent %d)", len(got), len(body))
					}
				})
			}
		}
	}
	if n := app.conns.Load(); n != 1 {
		t.Errorf("the app saw %d connections, want 1 (keep-alive through the proxy)", n)
	}
}

// TestHeadsUnchanged: the app sees the request head byte for byte as the client wrote it
// (header case, order, repeats; no X-Forwarded-For), and the client the app's answer head.
func TestHeadsUnchanged(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const answer = "HTTP/1.1 200 OK\r\nx-lower: a\r\nX-Dup: 1\r\nX-Dup: 2\r\nContent-Length: 3\r\n\r\nabc"
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		h, err := readHeadRaw(bufio.NewReader(c))
		got <- h
		if err == nil {
			io.WriteString(c, answer)
		}
	}()
	addr, _ := startProxy(t, Rule{Path: "/x", Percent: 100, Abort: 500}, ln.Addr().String(), Options{})
	const req = "GET /a%2Fb?q=1&q=2 HTTP/1.1\r\nhost: example\r\nx-Custom:  spaced \r\nCookie: a=1\r\nCookie: b=2\r\nUser-Agent: t\r\n\r\n"
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, req)
	if h := <-got; h != req {
		t.Errorf("the app read\n%q\nwant\n%q", h, req)
	}
	buf := make([]byte, len(answer))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != answer {
		t.Errorf("the client read %q, %v; want %q", buf, err, answer)
	}
}

func readHeadRaw(r *bufio.Reader) (string, error) {
	var sb strings.Builder
	for {
		l, err := r.ReadString('\n')
		sb.WriteString(l)
		if err != nil || l == "\r\n" {
			return sb.String(), err
		}
	}
}

func TestMatch(t *testing.T) {
	re := regexp.MustCompile
	tests := []struct {
		name   string
		rule   Rule
		req    string // request line and headers, without the blank line
		faults bool
	}{
		{"any", Rule{}, "GET / HTTP/1.1", true},
		{"method", Rule{Methods: []string{"POST", "PUT"}}, "PUT /x HTTP/1.1", true},
		{"method other", Rule{Methods: []string{"POST"}}, "GET /x HTTP/1.1", false},
		{"method lower in rule", Rule{Methods: []string{"post"}}, "POST /x HTTP/1.1", true},
		{"prefix", Rule{Path: "/api/"}, "GET /api/orders HTTP/1.1", true},
		{"prefix other", Rule{Path: "/api/"}, "GET /apix HTTP/1.1", false},
		{"prefix not the query", Rule{Path: "/a?x"}, "GET /a?x=1 HTTP/1.1", false},
		{"absolute form", Rule{Path: "/api"}, "GET http://h:80/api/x?y HTTP/1.1", true},
		{"regexp", Rule{PathRE: re(`^/orders/[0-9]+$`)}, "DELETE /orders/42?force=1 HTTP/1.1", true},
		{"regexp other", Rule{PathRE: re(`^/orders/[0-9]+$`)}, "DELETE /orders/42/items HTTP/1.1", false},
		{"regexp unanchored", Rule{PathRE: re(`items`)}, "GET /orders/42/items HTTP/1.1", true},
		{"header", Rule{Headers: map[string]*regexp.Regexp{"X-User": re(`^beta-`)}}, "GET / HTTP/1.1\r\nx-user: beta-7", true},
		{"header other value", Rule{Headers: map[string]*regexp.Regexp{"X-User": re(`^beta-`)}}, "GET / HTTP/1.1\r\nX-User: prod", false},
		{"header missing", Rule{Headers: map[string]*regexp.Regexp{"X-User": re(`.*`)}}, "GET / HTTP/1.1\r\nX-Other: 1", false},
		{"header repeated joined", Rule{Headers: map[string]*regexp.Regexp{"X-A": re(`^1, 2$`)}}, "GET / HTTP/1.1\r\nX-A: 1\r\nX-A: 2", true},
		{"headers all", Rule{Headers: map[string]*regexp.Regexp{"X-A": re(`1`), "X-B": re(`2`)}}, "GET / HTTP/1.1\r\nX-A: 1", false},
		{"host", Rule{Headers: map[string]*regexp.Regexp{"host": re(`^shop\.`)}}, "GET / HTTP/1.1\r\nHost: shop.example", true},
		{"everything", Rule{Methods: []string{"POST"}, Path: "/api", Headers: map[string]*regexp.Regexp{"Content-Type": re(`json`)}},
			"POST /api/orders HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 0", true},
	}
	app := startApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "app") }))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.rule
			r.Percent, r.Abort = 100, 418
			addr, _ := startProxy(t, r, app, Options{})
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, tt.req+"\r\n\r\n")
			res, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := res.StatusCode == 418; got != tt.faults {
				t.Errorf("status %d: faulted %v, want %v", res.StatusCode, got, tt.faults)
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	dial := dialTo("127.0.0.1:1")
	many := map[string]*regexp.Regexp{}
	for i := range maxRuleHeaders + 1 {
		many[fmt.Sprintf("X-%d", i)] = regexp.MustCompile(".")
	}
	tests := []struct {
		name string
		rule Rule
		o    Options
		want string
	}{
		{"percent", Rule{Percent: 150}, Options{Dial: dial}, "percent 150"},
		{"negative percent", Rule{Percent: -1}, Options{Dial: dial}, "percent -1"},
		{"abort status", Rule{Abort: 99}, Options{Dial: dial}, "abort 99"},
		{"grpc status", Rule{GRPC: 17}, Options{Dial: dial}, "grpc status 17"},
		{"delay", Rule{Delay: -time.Second}, Options{Dial: dial}, "delay -1s"},
		{"method", Rule{Methods: []string{"GET /"}}, Options{Dial: dial}, `method "GET /"`},
		{"header name", Rule{Headers: map[string]*regexp.Regexp{"X Y": regexp.MustCompile(".")}}, Options{Dial: dial}, `header "X Y"`},
		{"header pattern", Rule{Headers: map[string]*regexp.Regexp{"X-Y": nil}}, Options{Dial: dial}, `header "X-Y": no pattern`},
		{"headers", Rule{Headers: many}, Options{Dial: dial}, "at most 8"},
		{"dial", Rule{}, Options{}, "no Dial"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.rule, tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want an error about %q", err, tt.want)
			}
		})
	}
}
