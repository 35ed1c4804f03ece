package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/internal/testenv"
	"github.com/chaoscron/chaoscron/journal"
	"github.com/chaoscron/chaoscron/pkg/api"
)

// TestFloodHelper is not a test: re-run with CHAOSCRON_FLOOD=addr,n it opens up to n idle
// TCP connections to addr and holds them until killed, printing how many it holds. Several
// such processes make a flood larger than one process's descriptor limit allows.
func TestFloodHelper(t *testing.T) {
	spec := os.Getenv("CHAOSCRON_FLOOD")
	if spec == "" {
		t.Skip("a helper process of TestFloodKeepsRevertsAndSocket")
	}
	addr, ns, _ := strings.Cut(spec, ",")
	n, _ := strconv.Atoi(ns)
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	// Dials the agent's accept queue cannot take time out quickly and are tried again.
	d := net.Dialer{Timeout: 500 * time.Millisecond}
	for range 500 {
		go func() {
			for {
				mu.Lock()
				full := len(conns) >= n
				mu.Unlock()
				if full {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				c, err := d.Dial("tcp", addr)
				if err != nil {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		}()
	}
	for range time.Tick(200 * time.Millisecond) {
		mu.Lock()
		fmt.Printf("held %d\n", len(conns))
		mu.Unlock()
	}
}

// flood starts enough helper processes to hold n connections to addr between them, each
// within its own descriptor limit. held reports how many they hold now.
func flood(t *testing.T, addr string, n int) (held func() int, stop func()) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	per := int(rl.Max) - 200
	testenv.Require(t, per >= 1000, "a flood needs an open-files limit of 1,200 or more")
	procs := (n + per - 1) / per
	logs := make([]*testenv.Buffer, procs)
	cmds := make([]*exec.Cmd, procs)
	for i := range procs {
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(self, "-test.run=^TestFloodHelper$", "-test.v")
		cmd.Env = append(os.Environ(), fmt.Sprintf("CHAOSCRON_FLOOD=%s,%d", addr, min(per, n-i*per)))
		logs[i] = &testenv.Buffer{}
		cmd.Stdout = logs[i]
		testenv.Start(t, cmd)
		cmds[i] = cmd
	}
	stop = func() {
		for _, c := range cmds {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	}
	return func() int {
		total := 0
		for _, l := range logs {
			lines := strings.Split(strings.TrimSpace(l.String()), "\n")
			for i := len(lines) - 1; i >= 0; i-- {
				if v, ok := strings.CutPrefix(lines[i], "held "); ok {
					k, _ := strconv.Atoi(v)
					total += k
					break
				}
			}
		}
		return total
	}, stop
}

// TestFloodKeepsRevertsAndSocket: 20,000 connections on agent.listen (127.0.0.1) must not
// starve the agent: a run in place reverts on time, and a halt on the socket answers within
// a second. The agent runs with 4,096 descriptors, a limit such a flood exceeds: before the
// connection cap it accepted until it had none left, its disk revert failed with "too many
// open files" (retried 30 s later) and the socket's accept failed too.
func TestFloodKeepsRevertsAndSocket(t *testing.T) {
	sh := testenv.Tool(t, "sh")
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := writeConfig(t, dir, fmt.Sprintf(`
agent: {listen: "%s"}
journal: {path: %s/j.db}
experiments:
  - {name: fill, schedule: "@every 1h", duration: 15s, fault: {type: disk, path: %s, size: 1MiB, reserve: 1MiB}}
`, addr, dir, dir))
	a := &agent{t: t, log: &testenv.Buffer{}}
	a.cmd = exec.Command(sh, "-c", `ulimit -n 4096 && exec "$0" run -c "$1"`, bin, cfg)
	a.cmd.Dir = dir
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	testenv.Start(t, a.cmd)
	eventually(t, 20*time.Second, "the agent to be ready", func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	sock := api.SocketPath(filepath.Join(dir, "j.db"))
	cl := api.NewClient(sock)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	rec, err := cl.Fire(ctx, "fill")
	if err != nil {
		t.Fatalf("fire: %v", err)
	}

	// The flood builds up while the fill is held (15 s): past the agent's 4,096
	// descriptors if nothing stops it.
	held, stop := flood(t, addr, 20000)
	for end := time.Now().Add(10 * time.Second); held() < 4000 && time.Now().Before(end); {
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("flood: %d connections held %v before the run's planned end", held(), time.Until(rec.PlannedEnd).Round(time.Millisecond))
	var last journal.Record
	reverted := func(until time.Time) journal.Record {
		for time.Now().Before(until) {
			time.Sleep(100 * time.Millisecond)
			// A client of its own each time: a request the agent never accepted must not
			// hold up the next one.
			c := api.NewClient(sock)
			r, err := c.Get(rec.ID)
			c.Close()
			if err == nil {
				last = r
				if r.Cleanup == journal.CleanupDone {
					return r
				}
			}
		}
		return last
	}
	got := reverted(rec.PlannedEnd.Add(5 * time.Second))
	if got.Cleanup != journal.CleanupDone {
		// Figures for the failure: a halt on the socket under the flood, and how late the
		// revert came once the flood stopped (a failed revert is retried every 30 s).
		start := time.Now()
		hctx, hcancel := context.WithTimeout(ctx, 20*time.Second)
		_, herr := api.NewClient(sock).Halt(hctx, "flood")
		hcancel()
		t.Logf("halt on the socket under the flood: %v (%v)", time.Since(start), herr)
		stop()
		got = reverted(time.Now().Add(45 * time.Second))
		t.Fatalf("run %d not reverted 5 s after its planned end under a flood; then cleanup %q, ended %v late, error %q",
			rec.ID, got.Cleanup, got.EndedAt.Sub(got.PlannedEnd), got.Error)
	}
	late := got.EndedAt.Sub(got.PlannedEnd)
	t.Logf("revert under the flood: ended %v after its planned end", late)
	// The bound is generous: a revert on an unloaded agent ends within milliseconds.
	if late > time.Second {
		t.Errorf("run reverted %v after its planned end, want < 1 s", late)
	}

	// The exec probe the manifests use answers over the socket: a flood from outside the pod
	// cannot make the pod unready.
	pstart := time.Now()
	out, errOut, code := cli(t, dir, "probe", "ready", "--journal", filepath.Join(dir, "j.db"))
	t.Logf("probe ready under a flood of %d connections: %v", held(), time.Since(pstart))
	if code != 0 || out != "ok\n" {
		t.Errorf("probe ready under the flood: exit %d, %q %q; want 0, ok", code, out, errOut)
	}

	start := time.Now()
	hctx, hcancel := context.WithTimeout(ctx, 20*time.Second)
	defer hcancel()
	hr, err := cl.Halt(hctx, "flood")
	took := time.Since(start)
	t.Logf("halt on the socket under a flood of %d connections: %v", held(), took)
	if err != nil || !hr.Halted {
		t.Fatalf("halt on the socket: %+v %v", hr, err)
	}
	if took > time.Second {
		t.Errorf("halt on the socket took %v under the flood, want < 1 s", took)
	}
}
