package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chaoscron/chaoscron/internal/testenv"
)

// TestCrashHTTPRedirect: the http fault's redirect outlives a SIGKILLed agent (it points at
// the dead agent's proxy port) and the restarted agent removes it before it fires again. A
// foreign table with chaoscron's prefix is never touched.
func TestCrashHTTPRedirect(t *testing.T) {
	path, nft, tables := httpNetns(t)
	nft("nft add table inet chaoscron_http_foreign")
	var crashed string // the crashed run's table
	crashTest(t, fmt.Sprintf("{type: http, port: 8080, netns: %s, abort: 503}", path), true, func(string, *agent) bool {
		ts := tables()
		if crashed == "" && len(ts) == 1 {
			crashed = ts[0]
		}
		return crashed != "" && slices.Contains(ts, crashed)
	})
	if !strings.Contains(nft("nft list tables"), "table inet chaoscron_http_foreign") {
		t.Fatal("the foreign table is gone")
	}
}

// TestCrashHTTPJournalLost: the agent is SIGKILLed with its redirect in place and its journal
// is deleted; `chaoscron recover` finds the table by its name and mark and removes it.
func TestCrashHTTPJournalLost(t *testing.T) {
	path, nft, tables := httpNetns(t)
	nft("nft add table inet chaoscron_http_foreign")
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`
agent: {listen: "off"}
journal: {path: %s/j.db}
experiments:
  - name: victim
    schedule: "@every 1s"
    duration: 1h
    fault: {type: http, port: 8080, netns: %s, delay: 1s}
`, dir, path))
	a := startAgent(t, dir, "-c", cfg)
	eventually(t, 10*time.Second, "the redirect to be in place", func() bool { return len(tables()) == 1 })
	a.crash()
	if err := os.Remove(filepath.Join(dir, "j.db")); err != nil {
		t.Fatal(err)
	}
	out, errs, code := cli(t, dir, "recover", "-c", cfg)
	if code != 0 {
		t.Fatalf("recover: exit %d\n%s%s", code, out, errs)
	}
	if ts := tables(); len(ts) != 0 {
		t.Fatalf("tables after recover without a journal: %v\n%s%s", ts, out, errs)
	}
	if !strings.Contains(out+errs, "chaoscron_http_") {
		t.Errorf("recover does not say what it swept:\n%s%s", out, errs)
	}
	if !strings.Contains(nft("nft list tables"), "table inet chaoscron_http_foreign") {
		t.Fatal("the foreign table is gone")
	}
}

// httpNetns makes a network namespace for the http fault's tests and returns its path, a
// runner of scripts inside it, and a lister of chaoscron's tables there (by name suffix).
func httpNetns(t *testing.T) (string, func(string) string, func() []string) {
	testenv.Root(t)
	testenv.Tool(t, "nsenter")
	testenv.Tool(t, "nft")
	ns := exec.Command("sleep", "86400")
	ns.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	if err := ns.Start(); err != nil {
		testenv.Require(t, false, "cannot create a network namespace: "+err.Error())
	}
	t.Cleanup(func() { _ = ns.Process.Kill(); _ = ns.Wait() })
	path := fmt.Sprintf("/proc/%d/ns/net", ns.Process.Pid)
	listenIn(t, path, ":8080") // the app's port: the fault plans only where something listens
	nft := func(script string) string {
		out, err := exec.Command("nsenter", "--net="+path, "sh", "-ec", script).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %s: %v", script, out, err)
		}
		return string(out)
	}
	tables := func() []string {
		var out []string
		for _, l := range strings.Split(nft("nft list tables"), "\n") {
			if s, ok := strings.CutPrefix(strings.TrimSpace(l), "table inet chaoscron_http_"); ok && s != "foreign" {
				out = append(out, s)
			}
		}
		return out
	}
	return path, nft, tables
}

// listenIn listens on addr inside the network namespace at path, until the test ends.
func listenIn(t *testing.T, path, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	inNetns(t, path, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		if err == nil {
			t.Cleanup(func() { ln.Close() })
		}
		return err
	})
	return ln
}

// inNetns runs fn on a thread inside the network namespace at path: sockets fn opens
// belong to it.
func inNetns(t testing.TB, path string, fn func() error) {
	t.Helper()
	if err := inNetnsErr(path, fn); err != nil {
		t.Fatal(err)
	}
}

func inNetnsErr(path string, fn func() error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	errc := make(chan error, 1)
	go func() {
		// The thread goes back to its own namespace before it is unlocked: a thread that
		// ends locked would take with it the namespace holder it may have started (its
		// Pdeathsig is per thread).
		runtime.LockOSThread()
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer own.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		err = fn()
		if serr := unix.Setns(int(own.Fd()), unix.CLONE_NEWNET); serr != nil {
			errc <- errors.Join(err, serr)
			select {} // never runs Go code in the wrong namespace again
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// TestCrashHTTPTorture: the agent is SIGKILLed at a random moment around its first fire
// (before it, during plan and inject, or while the fault is held), then recovered by
// `chaoscron recover`, by a restarted agent, or, with the journal deleted, by recover's
// sweep. No trial leaves a table, and the foreign look-alike is never touched.
func TestCrashHTTPTorture(t *testing.T) {
	path, nft, tables := httpNetns(t)
	nft("nft add table inet chaoscron_http_foreign")
	foreign := nft("nft list table inet chaoscron_http_foreign")
	trials := 9
	if testing.Short() {
		trials = 3
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	left := 0
	for i := range trials {
		dir := t.TempDir()
		cfg := writeConfig(t, dir, fmt.Sprintf(`
agent: {listen: "off"}
journal: {path: %s/j.db}
experiments:
  - name: victim
    schedule: "@every 1s"
    duration: 1h
    fault: {type: http, port: 8080, netns: %s, abort: 503}
`, dir, path))
		a := startAgent(t, dir, "-c", cfg)
		time.Sleep(700*time.Millisecond + time.Duration(rng.IntN(900))*time.Millisecond)
		a.crash()
		if len(tables()) > 0 {
			left++
		}
		var out, errs string
		var code int
		switch i % 3 {
		case 0:
			out, errs, code = cli(t, dir, "recover", "-c", cfg)
		case 1:
			// A restarted agent recovers before it fires, fires again, and reverts its
			// own run when stopped.
			b := startAgent(t, dir, "-c", cfg)
			time.Sleep(1500 * time.Millisecond)
			code = b.stop()
			out = b.log.String()
		case 2:
			if err := os.Remove(filepath.Join(dir, "j.db")); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			out, errs, code = cli(t, dir, "recover", "-c", cfg)
		}
		if code != 0 {
			t.Fatalf("trial %d: recovery exit %d\n%s%s", i, code, out, errs)
		}
		if ts := tables(); len(ts) != 0 {
			t.Fatalf("trial %d: tables left after recovery: %v\n%s%s", i, ts, out, errs)
		}
		if got := nft("nft list table inet chaoscron_http_foreign"); got != foreign {
			t.Fatalf("trial %d: the foreign table changed:\n%s", i, got)
		}
	}
	t.Logf("%d trials, %d left a redirect behind for recovery to remove", trials, left)
}
