package request

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/pkg/fault"
	"github.com/chaoscron/chaoscron/pkg/fault/request/internal/nstest"
	"github.com/chaoscron/chaoscron/pkg/fault/request/nft"
)

// TestInjectRevert: a client in another namespace reaches the app through the proxy while
// the fault is in place (the app sees the pod's own address, not the client's), bodies pass
// byte for byte, and after Revert the table is gone and new connections reach the app
// directly. A foreign look-alike table is untouched throughout.
func TestInjectRevert(t *testing.T) {
	cl, pod := nstest.Pair(t)
	app(t, pod, 8080)
	untouched := foreign(t, pod)
	c := client(cl, false)
	url := "http://" + nstest.PodIP + ":8080"

	f := newFault(t, fault.Params{"port": 8080, "netns": pod.Path, "abort": 503, "percent": 0})
	t0 := time.Now()
	plan, err := f.Plan(context.Background(), "run/1")
	if err != nil {
		t.Fatal(err)
	}
	tPlan := time.Since(t0)
	if got := chaoscronTables(t, pod); len(got) != 0 {
		t.Fatalf("Plan created %v", got)
	}
	t0 = time.Now()
	u, err := f.Inject(context.Background(), plan)
	if err != nil {
		t.Fatal(err)
	}
	tInject := time.Since(t0)
	if got := chaoscronTables(t, pod); len(got) != 1 || got[0] != "inet "+nft.TableName("run/1") {
		t.Fatalf("tables after Inject: %v", got)
	}
	if _, body := get(t, c, url+"/x"); body != "app /x from "+nstest.PodIP {
		t.Errorf("through the proxy: %q, want the app seeing the pod's own address", body)
	}
	for _, url := range []string{url, "http://[" + nstest.PodIP6 + "]:8080"} {
		body := make([]byte, 1<<20+17)
		_, _ = rand.Read(body)
		resp, err := c.Post(url+"/echo", "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(got, body) {
			t.Errorf("POST %s/echo: %d bytes back (err %v), want the %d sent, byte for byte", url, len(got), err, len(body))
		}
	}
	// A second run on the same port is refused at plan, and changes nothing.
	g := newFault(t, fault.Params{"port": 8080, "netns": pod.Path, "delay": "1s"})
	if _, err := g.Plan(context.Background(), "run/2"); !errors.Is(err, nft.ErrBusy) {
		t.Errorf("second Plan on port 8080: %v, want ErrBusy", err)
	}

	t0 = time.Now()
	if err := f.Revert(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	t.Logf("measure: plan %v, inject %v, revert %v (no connection held)", tPlan, tInject, time.Since(t0))
	if got := chaoscronTables(t, pod); len(got) != 0 {
		t.Fatalf("tables after Revert: %v", got)
	}
	if _, body := get(t, c, url+"/x"); body != "app /x from "+nstest.ClientIP {
		t.Errorf("after Revert: %q, want the app reached directly", body)
	}
	if err := f.Revert(context.Background(), u); err != nil {
		t.Errorf("second Revert: %v", err)
	}
	if err := f.Revert(context.Background(), plan); err != nil {
		t.Errorf("Revert of the plan: %v", err)
	}
	if n := len(sessions.m); n != 0 {
		t.Errorf("%d proxies left running", n)
	}
	untouched()
}

// TestInjectFailsClean: Inject failing after the proxy is up, and a second Inject racing
// the first for the port, leave no table and no listener behind.
func TestInjectFailsClean(t *testing.T) {
	cl, pod := nstest.Pair(t)
	app(t, pod, 8080)
	listeners := func() string { return pod.Sh(t, "ss -Hltn | awk '{print $4}' | sort | tr '\\n' ' '") }
	before := listeners()

	f := newFault(t, fault.Params{"port": 8080, "netns": pod.Path, "abort": 503})
	f.beforeRedirect = func() error { return errors.New("injected failure") }
	plan, err := f.Plan(context.Background(), "fails")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Inject(context.Background(), plan); err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("Inject: %v, want the injected failure", err)
	}
	if got := chaoscronTables(t, pod); len(got) != 0 {
		t.Errorf("tables after a failed Inject: %v", got)
	}
	if got := listeners(); got != before {
		t.Errorf("listeners after a failed Inject: %q, want %q as before", got, before)
	}

	// Two runs planned before either injects: the second Inject finds the port taken.
	a := newFault(t, fault.Params{"port": 8080, "netns": pod.Path, "abort": 503})
	b := newFault(t, fault.Params{"port": 8080, "netns": pod.Path, "delay": "1s"})
	pa, err := a.Plan(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	pb, err := b.Plan(context.Background(), "b")
	if err != nil {
		t.Fatal(err)
	}
	ua, err := a.Inject(context.Background(), pa)
	if err != nil {
		t.Fatal(err)
	}
	ub, err := b.Inject(context.Background(), pb)
	if !errors.Is(err, nft.ErrBusy) {
		t.Fatalf("second Inject: %v, want ErrBusy", err)
	}
	// The runner reverts what a failed Inject returns: that must not touch the first run's.
	if err := b.Revert(context.Background(), ub); err != nil {
		t.Fatal(err)
	}
	if got := chaoscronTables(t, pod); len(got) != 1 || got[0] != "inet "+nft.TableName("a") {
		t.Errorf("tables: %v, want only the first run's", got)
	}
	if err := a.Revert(context.Background(), ua); err != nil {
		t.Fatal(err)
	}
	if got := listeners(); got != before {
		t.Errorf("listeners after both: %q, want %q as before", got, before)
	}
	if _, body := get(t, client(cl, false), "http://"+nstest.PodIP+":8080/x"); body != "app /x from "+nstest.ClientIP {
		t.Errorf("after Revert: %q, want the app reached directly", body)
	}
}

// TestSweep: a leftover table no undo owns is removed, a kept one and a foreign one are not.
func TestSweep(t *testing.T) {
	pod := nstest.New(t)
	untouched := foreign(t, pod)
	c, err := nft.Open(pod.NS().FD())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	leftover, kept := nft.TableName("dead-1"), nft.TableName("live-2")
	if err := c.Create(leftover, 8080, 40001); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(kept, 8081, 40002); err != nil {
		t.Fatal(err)
	}
	f := newFault(t, fault.Params{"port": 8080, "netns": pod.Path, "abort": 503})
	keep, _ := json.Marshal(undo{Version: undoVersion, Run: "live-2", Netns: pod.Path, NetnsInode: pod.NS().Inode, Table: kept, Port: 8081})
	other, _ := json.Marshal(map[string]any{"version": 1, "interfaces": []any{}}) // another fault's undo
	removed, err := f.Sweep(context.Background(), []fault.Undo{keep, other})
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || !strings.Contains(removed[0], leftover) {
		t.Errorf("Sweep removed %q, want only %s", removed, leftover)
	}
	if got := chaoscronTables(t, pod); len(got) != 1 || got[0] != "inet "+kept {
		t.Errorf("tables after Sweep: %v, want only %s", got, kept)
	}
	untouched()
	// A namespace that is gone has nothing to sweep.
	g := newFault(t, fault.Params{"port": 8080, "netns": "/run/netns/chaoscron-no-such", "abort": 503})
	if removed, err := g.Sweep(context.Background(), nil); err != nil || len(removed) != 0 {
		t.Errorf("Sweep of a missing namespace: %v %v", removed, err)
	}
}

// TestPlanErrors: what Plan refuses (a missing namespace, a file that is no namespace, a port
// nothing listens on), and Inject and Revert refusing plans and undos that are not this
// fault's, with nothing changed.
func TestPlanErrors(t *testing.T) {
	pod := nstest.New(t)
	f := newFault(t, fault.Params{"port": 8080, "netns": "/run/netns/chaoscron-no-such", "abort": 503})
	if _, err := f.Plan(context.Background(), "x"); err == nil || !strings.Contains(err.Error(), "chaoscron-no-such") {
		t.Errorf("Plan in a missing namespace: %v", err)
	}
	f = newFault(t, fault.Params{"port": 8080, "netns": "/etc/hostname", "abort": 503})
	if _, err := f.Plan(context.Background(), "x"); err == nil || !strings.Contains(err.Error(), "/etc/hostname is not a network namespace") {
		t.Errorf("Plan in a file that is no namespace: %v", err)
	}
	f = newFault(t, fault.Params{"port": 8080, "netns": pod.Path, "abort": 503})
	if _, err := f.Plan(context.Background(), "x"); err == nil || !strings.Contains(err.Error(), "nothing listens on tcp port 8080") {
		t.Errorf("Plan with no app on the port: %v", err)
	}
	pod.Listen(t, "[::1]:8080") // IPv6 only, on loopback: still the app's port
	plan, err := f.Plan(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	g := newFault(t, fault.Params{"port": 8081, "netns": pod.Path, "abort": 503})
	if _, err := g.Inject(context.Background(), plan); err == nil {
		t.Error("Inject of a plan for another port: no error")
	}
	if got := chaoscronTables(t, pod); len(got) != 0 {
		t.Errorf("tables: %v", got)
	}
	for _, bad := range []string{`{"version":1,"table":"mine","port":80}`, `{"version":2,"table":"chaoscron_http_x","port":80}`, `{`} {
		if err := f.Revert(context.Background(), fault.Undo(bad)); err == nil {
			t.Errorf("Revert(%s): no error", bad)
		}
	}
}
