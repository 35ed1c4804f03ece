package request

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/pkg/fault"
	"github.com/chaoscron/chaoscron/pkg/fault/request/internal/nstest"
	"github.com/chaoscron/chaoscron/pkg/fault/request/nft"
)

// The test binary doubles as a helper process, chosen by envHelper:
//
//	inject  plans a fault from envParams, writes the plan to envPlanFile (fsynced, as the
//	        journal would), prints "planned", injects, prints "injected" and waits to be
//	        killed: an agent that dies at whatever moment the test picks
//	hold    plans and injects a fault from envParams, prints "injected", reverts when a
//	        line arrives on stdin, prints "reverted" and exits: the whole life of a run in
//	        a process whose privileges the test chose
const (
	envHelper   = "CHAOSCRON_HTTP_HELPER"
	envParams   = "CHAOSCRON_PARAMS"
	envPlanFile = "CHAOSCRON_PLAN_FILE"
)

func TestMain(m *testing.M) {
	switch os.Getenv(envHelper) {
	case "":
		os.Exit(m.Run())
	case "inject":
		helperInject()
	case "hold":
		helperHold()
	default:
		fmt.Fprintln(os.Stderr, "unknown helper", os.Getenv(envHelper))
		os.Exit(2)
	}
}

// helperFault is the fault of envParams; a helper that fails prints why and exits 1 (die).
func helperFault() fault.Fault {
	var p fault.Params
	if err := json.Unmarshal([]byte(os.Getenv(envParams)), &p); err != nil {
		die(err)
	}
	f, err := New(p, fault.Env{})
	if err != nil {
		die(err)
	}
	return f
}

func die(err error) {
	fmt.Println(err)
	os.Exit(1)
}

func helperInject() {
	f := helperFault()
	plan, err := f.Plan(context.Background(), fmt.Sprintf("torture-%d", os.Getpid()))
	if err != nil {
		die(err)
	}
	pf, err := os.Create(os.Getenv(envPlanFile))
	if err == nil {
		_, err = pf.Write(plan)
	}
	if err == nil {
		err = pf.Sync()
	}
	if err != nil {
		die(err)
	}
	pf.Close()
	fmt.Println("planned")
	if _, err := f.Inject(context.Background(), plan); err != nil {
		die(err)
	}
	fmt.Println("injected")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	os.Exit(0)
}

func helperHold() {
	f := helperFault()
	ctx := context.Background()
	plan, err := f.Plan(ctx, fmt.Sprintf("hold-%d", os.Getpid()))
	if err != nil {
		die(err)
	}
	u, err := f.Inject(ctx, plan)
	if err != nil {
		die(err)
	}
	fmt.Println("injected")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	if err := f.Revert(ctx, u); err != nil {
		die(err)
	}
	fmt.Println("reverted")
	os.Exit(0)
}

func testEnv() fault.Env {
	return fault.Env{Log: slog.New(slog.DiscardHandler)}
}

func newFault(t testing.TB, p fault.Params) *Fault {
	t.Helper()
	f, err := New(p, testEnv())
	if err != nil {
		t.Fatal(err)
	}
	return f.(*Fault)
}

// app serves HTTP in the pod's namespace on port: /echo answers the request body, anything
// else "app <path>".
func app(t testing.TB, pod *nstest.NS, port int) {
	t.Helper()
	ln := pod.Listen(t, fmt.Sprintf(":%d", port))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/echo" {
			// Read it all first: an HTTP/1 handler that writes before the body is read
			// gets the rest of the body cut off.
			b, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			_, _ = w.Write(b)
			return
		}
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		fmt.Fprintf(w, "app %s from %s", r.URL.Path, host)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
}

// client is an HTTP client in the client's namespace; keepAlive false opens a new
// connection per request (so each one passes the nat chain).
func client(from *nstest.NS, keepAlive bool) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: from.DialContext, DisableKeepAlives: !keepAlive,
	}}
}

// get returns status and body of GET url.
func get(t testing.TB, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// chaoscronTables lists the chaoscron tables nft sees in the namespace.
func chaoscronTables(t testing.TB, ns *nstest.NS) []string {
	t.Helper()
	var out []string
	for _, tb := range ns.Tables(t) {
		if strings.HasPrefix(tb, "inet "+nft.Prefix) && !strings.HasPrefix(tb, "inet "+nft.Prefix+"foreign") {
			out = append(out, tb)
		}
	}
	return out
}

// foreign creates a look-alike table (chaoscron's prefix and chain name, a redirect rule,
// no mark) in ns and returns a check that it is still there, unchanged.
func foreign(t testing.TB, ns *nstest.NS) func() {
	t.Helper()
	ns.Sh(t, `nft add table inet chaoscron_http_foreign
nft add chain inet chaoscron_http_foreign chaoscron '{ type nat hook prerouting priority dstnat; }'
nft add rule inet chaoscron_http_foreign chaoscron tcp dport 7777 redirect to :7778`)
	before := ns.Sh(t, "nft list table inet chaoscron_http_foreign")
	return func() {
		t.Helper()
		after, err := ns.ShErr("nft list table inet chaoscron_http_foreign")
		if err != nil || after != before {
			t.Fatalf("the foreign table was touched: before\n%s\nafter\n%s %v", before, after, err)
		}
	}
}
