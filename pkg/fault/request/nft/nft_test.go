package nft_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/chaoscron/chaoscron/pkg/fault/request/internal/nstest"
	"github.com/chaoscron/chaoscron/pkg/fault/request/nft"
)

func TestTableName(t *testing.T) {
	long := strings.Repeat("x", 100)
	for _, tc := range []struct{ key, want string }{
		{"abc_12", "chaoscron_http_abc_12"},
		{"a-1", "chaoscron_http_a_1_"},        // sanitised: a hash follows
		{"a_1", "chaoscron_http_a_1"},         // not the same as "a-1"'s
		{"ä", "chaoscron_http___"},            // non-ASCII
		{long, "chaoscron_http_" + long[:40]}, // cut, then a hash
	} {
		got := nft.TableName(tc.key)
		if !strings.HasPrefix(got, tc.want) || len(got) > 64 {
			t.Errorf("TableName(%q) = %q, want it to start with %q, ≤ 64 bytes", tc.key, got, tc.want)
		}
	}
	if nft.TableName("a-1") == nft.TableName("a_1") || nft.TableName(long) == nft.TableName(long+"y") {
		t.Error("two keys share a table name")
	}
}

// TestCreateListDelete: the table's life, and a foreign table with a look-alike name that
// is never listed, refused for deletion, and still there at the end.
func TestCreateListDelete(t *testing.T) {
	ns := nstest.New(t)
	// Look-alikes: chaoscron's prefix, even its chain name, but no mark (or another comment).
	ns.Sh(t, `nft add table inet chaoscron_http_foreign
nft add chain inet chaoscron_http_foreign chaoscron '{ type nat hook prerouting priority dstnat; }'
nft add rule inet chaoscron_http_foreign chaoscron tcp dport 8080 redirect to :9999 comment '"not chaoscron"'
nft add table inet chaoscron_http_bare`)
	c, err := nft.Open(ns.NS().FD())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if rs, err := c.List(); err != nil || len(rs) != 0 {
		t.Fatalf("List before: %v %v, want nothing (the look-alikes are not chaoscron's)", rs, err)
	}
	name := nft.TableName("run-1")
	if err := c.Create(name, 8080, 41234); err != nil {
		t.Fatal(err)
	}
	rs, err := c.List()
	if err != nil || len(rs) != 1 || rs[0] != (nft.Redirect{Table: name, Port: 8080, To: 41234, Active: true}) {
		t.Fatalf("List: %v %v", rs, err)
	}
	rules := ns.Sh(t, "nft list table inet "+name)
	for _, want := range []string{"hook prerouting priority dstnat", "fib daddr type local", "tcp dport 8080",
		"redirect to :41234", `comment "chaoscron http 8080>41234"`, `comment "chaoscron http redirect"`} {
		if !strings.Contains(rules, want) {
			t.Errorf("nft list table: no %q in\n%s", want, rules)
		}
	}
	if err := c.Create(nft.TableName("run-2"), 8080, 41235); !errors.Is(err, nft.ErrBusy) {
		t.Errorf("second redirect of port 8080: %v, want ErrBusy", err)
	}
	if err := c.Create(name, 8081, 41235); err == nil {
		t.Error("a second table of the same name was created")
	}
	for _, foreign := range []string{"chaoscron_http_foreign", "chaoscron_http_bare"} {
		if did, err := c.Delete(foreign); did || err == nil {
			t.Errorf("Delete(%s) = %v, %v: want it refused", foreign, did, err)
		}
		if err := c.Stop(foreign); err == nil {
			t.Errorf("Stop(%s): want it refused", foreign)
		}
	}
	// Stop: the redirect goes, the table stays, still chaoscron's (and its port's).
	for range 2 {
		if err := c.Stop(name); err != nil {
			t.Fatal(err)
		}
	}
	if rs, err := c.List(); err != nil || len(rs) != 1 || rs[0] != (nft.Redirect{Table: name, Port: 8080, To: 41234}) {
		t.Fatalf("List after Stop: %v %v", rs, err)
	}
	if rules := ns.Sh(t, "nft list table inet "+name); strings.Contains(rules, "redirect") {
		t.Errorf("after Stop:\n%s", rules)
	}
	if err := c.Create(nft.TableName("run-3"), 8080, 41236); !errors.Is(err, nft.ErrBusy) {
		t.Errorf("a redirect of port 8080 while the stopped table drains: %v, want ErrBusy", err)
	}
	if did, err := c.Delete(name); !did || err != nil {
		t.Fatalf("Delete: %v %v", did, err)
	}
	if did, err := c.Delete(name); did || err != nil {
		t.Fatalf("second Delete: %v %v, want false, nil (already gone is success)", did, err)
	}
	if err := c.Stop(name); err != nil {
		t.Fatalf("Stop of a table that is gone: %v", err)
	}
	got := ns.Tables(t)
	slices.Sort(got)
	if want := []string{"inet chaoscron_http_bare", "inet chaoscron_http_foreign"}; !slices.Equal(got, want) {
		t.Fatalf("tables left: %q, want only the foreign ones %q", got, want)
	}
}

// TestRedirect sends real connections from another namespace: to the redirected port they
// reach the "proxy", which reads the app's address with OriginalDst; to other ports, and from
// inside the pod's own namespace, they reach the app. After Stop, new connections reach the
// app while one redirected before still talks to the proxy (it is reset if the table keeps
// no conntrack reference); after Delete, the app.
func TestRedirect(t *testing.T) {
	client, pod := nstest.Pair(t)
	app := pod.Listen(t, ":8080")
	other := pod.Listen(t, ":8081")
	proxy := pod.Listen(t, ":0")
	go serve(app, "app")
	go serve(other, "other")
	go func() {
		for {
			c, err := proxy.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				dst, err := nft.OriginalDst(c)
				if err != nil {
					_, _ = io.WriteString(c, "proxy: "+err.Error()+"\n")
					return
				}
				_, _ = io.WriteString(c, "proxy for "+dst.String()+"\n")
				r := bufio.NewReader(c)
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						return
					}
					_, _ = io.WriteString(c, "pong "+l)
				}
			}()
		}
	}()
	c, err := nft.Open(pod.NS().FD())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	name := nft.TableName("redirect-test")
	to := uint16(proxy.Addr().(*net.TCPAddr).Port)
	if err := c.Create(name, 8080, to); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = c.Delete(name) })

	for _, tc := range []struct {
		from *nstest.NS
		addr string
		want string
	}{
		{client, nstest.PodIP + ":8080", "proxy for " + nstest.PodIP + ":8080"},
		{client, "[" + nstest.PodIP6 + "]:8080", "proxy for [" + nstest.PodIP6 + "]:8080"},
		{client, nstest.PodIP + ":8081", "other"},
		{pod, nstest.PodIP + ":8080", "app"}, // locally generated: output, not prerouting
		{pod, "127.0.0.1:8080", "app"},
	} {
		if got := fetch(t, tc.from, tc.addr); got != tc.want {
			t.Errorf("%s from %s: %q, want %q", tc.addr, tc.from.Path, got, tc.want)
		}
	}
	// A connection redirected before Stop keeps its translation while the table stays: it
	// still talks to the proxy. New connections reach the app.
	held, err := client.Dial(context.Background(), nstest.PodIP+":8080")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	hr := bufio.NewReader(held)
	if l, err := hr.ReadString('\n'); !strings.HasPrefix(l, "proxy for") {
		t.Fatalf("held connection: %q %v", l, err)
	}
	_, _ = held.Write([]byte("ping0\n"))
	if got, err := hr.ReadString('\n'); got != "pong ping0\n" {
		t.Errorf("before Stop: %q %v, want the proxy's answer", got, err)
	}
	if err := c.Stop(name); err != nil {
		t.Fatal(err)
	}
	if got := fetch(t, client, nstest.PodIP+":8080"); got != "app" {
		t.Errorf("after Stop: %q, want the app reached directly", got)
	}
	_, _ = held.Write([]byte("ping\n"))
	if got, err := hr.ReadString('\n'); got != "pong ping\n" {
		t.Errorf("a connection redirected before Stop: %q %v, want the proxy's answer", got, err)
	}
	if _, err := c.Delete(name); err != nil {
		t.Fatal(err)
	}
	if got := fetch(t, client, nstest.PodIP+":8080"); got != "app" {
		t.Errorf("after Delete: %q, want the app reached directly", got)
	}
	// A connection that was never redirected has no original destination to tell.
	conn, err := client.Dial(context.Background(), nstest.PodIP+":8081")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := nft.OriginalDst(conn); err == nil {
		t.Error("OriginalDst of a connection without NAT: no error")
	}
}

func serve(ln net.Listener, name string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = io.WriteString(c, name)
		c.Close()
	}
}

func fetch(t *testing.T, from *nstest.NS, addr string) string {
	t.Helper()
	c, err := from.Dial(context.Background(), addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	// One line, or all of an answer without one: the proxy stays open after its line.
	l, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && err != io.EOF {
		t.Fatalf("read from %s: %v", addr, err)
	}
	return strings.TrimSuffix(l, "\n")
}
