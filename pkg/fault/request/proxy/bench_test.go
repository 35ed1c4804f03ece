package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkPassThrough measures a request that is not faulted, HTTP/1.1 with keep-alive, to a
// small net/http app: direct, through the proxy, through toxiproxy with no toxics and through
// HAProxy in HTTP mode, side by side in one run. Latency: one client, requests in turns to
// each, b.N each. Throughput: 8 clients for CHAOSCRON_BENCH_RPS_WINDOW (default 500ms) per
// target, in turns, six rounds; once on shared cores and once in the sidecar layout (see tput).
// Per proxy process: CPU time and context switches per request. The goals: p50 added < 100 µs;
// requests/s ≥ 0.8× direct and ≥ toxiproxy's. Toxiproxy is built from internal/toxiproxy (a
// module of its own), HAProxy is taken from PATH; either missing, its columns are left out.
func BenchmarkPassThrough(b *testing.B) {
	app := startApp(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("hello from the app\n"))
	}))
	// The proxy runs in a process of its own, as it does in the agent and as toxiproxy does
	// here: the client and the app in this process do not share its scheduler or heap.
	addr, pid, err := startProxyProcess(b, app)
	if err != nil {
		b.Fatal(err)
	}
	targets := []target{{"direct", app}, {"proxy", addr}}
	pids := []int{0, pid}
	if tp, tpid, err := startToxiproxy(b, app); err != nil {
		b.Logf("toxiproxy left out: %v", err)
	} else {
		targets = append(targets, target{"toxiproxy", tp})
		pids = append(pids, tpid)
	}
	// HAProxy in HTTP mode, when installed: a proxy in C that parses HTTP as this one does,
	// for what a userspace proxy costs at all on this machine.
	if hp, hpid, err := startHAProxy(b, app); err != nil {
		b.Logf("haproxy left out: %v", err)
	} else {
		targets = append(targets, target{"haproxy", hp})
		pids = append(pids, hpid)
	}

	clients := make([]*http.Client, len(targets))
	lat := make([][]time.Duration, len(targets))
	for i := range targets {
		clients[i] = client()
		get(b, clients[i], targets[i].addr) // the connection is open before timing
	}
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		for k := range targets {
			i := (n + k) % len(targets) // each goes first in turn
			t0 := time.Now()
			get(b, clients[i], targets[i].addr)
			lat[i] = append(lat[i], time.Since(t0))
		}
	}
	b.StopTimer()
	p50 := make([]float64, len(targets))
	for i, t := range targets {
		p50[i] = µs(pct(lat[i], 50))
		b.ReportMetric(p50[i], t.name+"-p50-µs")
		b.ReportMetric(µs(pct(lat[i], 99)), t.name+"-p99-µs")
	}
	for i, t := range targets[1:] {
		name := t.name + "-"
		if i == 0 {
			name = ""
		}
		b.ReportMetric(p50[i+1]-p50[0], name+"added-p50-µs")
		b.ReportMetric(µs(pct(lat[i+1], 99))-µs(pct(lat[0], 99)), name+"added-p99-µs")
	}

	window := 500 * time.Millisecond
	if s := os.Getenv("CHAOSCRON_BENCH_RPS_WINDOW"); s != "" {
		if d, err := time.ParseDuration(s); err == nil {
			window = d
		}
	}
	// Throughput twice. Shared: the client, the app and the proxy compete for every core, so
	// requests/s measures CPU per request more than anything else. Sidecar: the client and the
	// app keep to one core and the proxy has the other, as a sidecar container runs on CPU of
	// its own request rather than the app's; direct then has that one core for itself too.
	tput(b, "", targets, pids, window, nil)
	if runtime.NumCPU() >= 2 {
		var load, own unix.CPUSet // the client's and app's core; the proxy's
		load.Set(0)
		own.Set(1)
		tput(b, "sidecar-", targets, pids, window, &[2]unix.CPUSet{load, own})
	}
}

// tput measures requests/s of 8 clients for each target in rounds, each target once per round
// in turn; a ratio is the median of the rounds' own ratios, so that load from outside moves
// both sides of each. The proxies' CPU time per request (utime+stime of their processes over
// their windows) does not depend on that load at all. With pin, this process keeps to pin[0]
// and the proxies' processes to pin[1] for the while.
func tput(b *testing.B, prefix string, targets []target, pids []int, window time.Duration, pin *[2]unix.CPUSet) {
	if pin != nil {
		var all unix.CPUSet
		for i := range runtime.NumCPU() {
			all.Set(i)
		}
		setAffinity(b, os.Getpid(), pin[0])
		for _, pid := range pids[1:] {
			setAffinity(b, pid, pin[1])
		}
		defer func() {
			for _, pid := range pids {
				if pid == 0 {
					pid = os.Getpid()
				}
				setAffinity(b, pid, all)
			}
		}()
	}
	const rounds = 6
	rps := make([][]float64, len(targets))
	cpu := make([]time.Duration, len(targets))
	reqs := make([]float64, len(targets))
	sw := make([]float64, len(targets))
	for round := 0; round < rounds; round++ {
		for k := range targets {
			i := (round + k) % len(targets)
			c0 := cpuTime(pids[i])
			s0 := switches(pids[i])
			r := throughput(b, targets[i].addr, 8, window)
			cpu[i] += cpuTime(pids[i]) - c0
			sw[i] += switches(pids[i]) - s0
			reqs[i] += r * window.Seconds()
			rps[i] = append(rps[i], r)
		}
	}
	for i, t := range targets {
		b.ReportMetric(median(rps[i]), prefix+t.name+"-req/s")
		if pids[i] != 0 {
			b.ReportMetric(µs(cpu[i])/reqs[i], prefix+t.name+"-cpu-µs/req")
			b.ReportMetric(sw[i]/reqs[i], prefix+t.name+"-switches/req")
		}
	}
	ratio := func(a, c int) float64 {
		q := make([]float64, rounds)
		for r := range q {
			q[r] = rps[a][r] / rps[c][r]
		}
		return median(q)
	}
	b.ReportMetric(ratio(1, 0), prefix+"ratio-direct")
	for i, t := range targets[2:] {
		b.ReportMetric(ratio(1, i+2), prefix+"ratio-"+t.name)
		b.ReportMetric(ratio(i+2, 0), prefix+t.name+"-ratio-direct")
	}
}

// setAffinity keeps every thread of process pid to cpus; threads made later inherit it.
func setAffinity(b *testing.B, pid int, cpus unix.CPUSet) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, t := range tasks {
		tid, _ := strconv.Atoi(t.Name())
		if err := unix.SchedSetaffinity(tid, &cpus); err != nil && !errors.Is(err, unix.ESRCH) {
			b.Fatalf("affinity of thread %d of %d: %v", tid, pid, err)
		}
	}
}

type target struct{ name, addr string }

// switches is the context switches of every thread of process pid so far.
func switches(pid int) float64 {
	if pid == 0 {
		return 0
	}
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	n := 0.0
	for _, t := range tasks {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, t.Name()))
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.HasSuffix(k, "ctxt_switches") {
				x, _ := strconv.Atoi(strings.TrimSpace(v))
				n += float64(x)
			}
		}
	}
	return n
}

// cpuTime is the user and system CPU time of process pid so far (0 for pid 0).
func cpuTime(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	var ut, st int64
	fmt.Sscan(f[11], &ut)
	fmt.Sscan(f[12], &st)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}

func get(b testing.TB, c *http.Client, addr string) {
	res, err := c.Get("http://" + addr + "/api/items?id=7")
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		b.Fatalf("%s: status %d", addr, res.StatusCode)
	}
}

// throughput runs conc clients, each on its own keep-alive connection, for d and returns the
// requests per second they completed together.
func throughput(b testing.TB, addr string, conc int, d time.Duration) float64 {
	var n atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	for range conc {
		c := client()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.CloseIdleConnections()
			for time.Now().Before(stop) {
				get(b, c, addr)
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / d.Seconds()
}

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func µs(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// startToxiproxy builds toxiproxy's server from internal/toxiproxy, starts it, and makes a
// proxy with no toxics in front of app through its HTTP API; it returns that proxy's address.
func startToxiproxy(b testing.TB, app string) (addr string, pid int, err error) {
	root, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", 0, err
	}
	dir := filepath.Join(filepath.Dir(strings.TrimSpace(string(root))), "internal", "toxiproxy")
	bin := filepath.Join(b.TempDir(), "toxiproxy")
	build := exec.Command("go", "build", "-o", bin, "github.com/Shopify/toxiproxy/v2/cmd/server")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		return "", 0, fmt.Errorf("build: %v: %s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return "", 0, err
	}
	cmd := exec.Command(bin, "-host", "127.0.0.1", "-port", port)
	if err := cmd.Start(); err != nil {
		return "", 0, err
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	api := "http://127.0.0.1:" + port
	body, _ := json.Marshal(map[string]any{"name": "app", "listen": "127.0.0.1:0", "upstream": app, "enabled": true})
	var res *http.Response
	for deadline := time.Now().Add(10 * time.Second); ; {
		res, err = http.Post(api+"/proxies", "application/json", bytes.NewReader(body))
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return "", 0, err
	}
	defer res.Body.Close()
	var created struct{ Listen string }
	if err := json.NewDecoder(res.Body).Decode(&created); err != nil || res.StatusCode != http.StatusCreated {
		return "", 0, fmt.Errorf("create a proxy: status %d, %v", res.StatusCode, err)
	}
	return created.Listen, cmd.Process.Pid, nil
}

// startHAProxy starts haproxy (from PATH) in HTTP mode with keep-alive on both sides in front
// of app; it returns its address.
func startHAProxy(b testing.TB, app string) (addr string, pid int, err error) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		return "", 0, err
	}
	port, err := freePort()
	if err != nil {
		return "", 0, err
	}
	addr = "127.0.0.1:" + port
	cfg := filepath.Join(b.TempDir(), "haproxy.cfg")
	err = os.WriteFile(cfg, []byte(`global
  maxconn 1000
defaults
  mode http
  option http-keep-alive
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend f
  bind `+addr+`
  default_backend app
backend app
  server app `+app+`
`), 0o600)
	if err != nil {
		return "", 0, err
	}
	cmd := exec.Command(bin, "-db", "-f", cfg)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", 0, err
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return addr, cmd.Process.Pid, nil
		}
		if time.Now().After(deadline) {
			return "", 0, fmt.Errorf("haproxy does not listen on %s: %s", addr, out.String())
		}
	}
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port, nil
}

// TestProxyProcess is the proxy process of BenchmarkPassThrough: with CHAOSCRON_PROXY_APP set,
// it serves a proxy in front of that address (a rule that matches nothing), prints its
// address and runs until killed.
func TestProxyProcess(t *testing.T) {
	app := os.Getenv("CHAOSCRON_PROXY_APP")
	if app == "" {
		t.Skip("the benchmark's proxy process; runs only when BenchmarkPassThrough starts it")
	}
	p, err := New(Rule{Path: "/never", Percent: 100, Abort: 503}, Options{Dial: dialTo(app)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		io.Copy(io.Discard, os.Stdin) // the benchmark closes it when done
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		p.Shutdown(ctx)
	}()
	fmt.Println("listening", ln.Addr())
	p.Serve(ln)
}

func startProxyProcess(b testing.TB, app string) (addr string, pid int, err error) {
	cmd := exec.Command(os.Args[0], "-test.run", "^TestProxyProcess$")
	cmd.Env = append(os.Environ(), "CHAOSCRON_PROXY_APP="+app)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", 0, err
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		return "", 0, err
	}
	if err := cmd.Start(); err != nil {
		return "", 0, err
	}
	b.Cleanup(func() {
		in.Close() // the process shuts the proxy down and exits
		t := time.AfterFunc(5*time.Second, func() { cmd.Process.Kill() })
		defer t.Stop()
		cmd.Wait()
	})
	if _, err := fmt.Fscanf(out, "listening %s\n", &addr); err != nil {
		return "", 0, fmt.Errorf("the proxy process: %w", err)
	}
	go io.Copy(io.Discard, out)
	return addr, cmd.Process.Pid, nil
}
