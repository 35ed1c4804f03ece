// Package request is the "http" fault: chosen inbound requests to the app's port are aborted
// (an HTTP status, or a gRPC status for gRPC) or delayed, by a proxy in the agent that new
// inbound connections to the port are redirected to while the run is active (see package nft
// for the redirect, package proxy for the proxy). The package is named request so that it
// does not shadow net/http.
//
// Parameters (everything is checked by New):
//
//	port         the app's TCP port (required); never the agent's own listen port
//	methods      only these methods ([GET, POST]); default: any
//	path         only paths with this prefix ("/api/orders")
//	path_regex   instead of path: an RE2 expression the whole path must match
//	headers      name → value: a string (exact), or {exact: v}, {prefix: v} or {regex: re}
//	             (the whole value must match); all must match
//	percent      of the matching requests, faulted (default 100)
//	abort        answer with this HTTP status (200..599) instead of passing the request on
//	grpc_status  answer gRPC requests with this status (1..16 or a name like UNAVAILABLE);
//	             alone, it aborts other requests with the HTTP status it maps to
//	delay        hold the request (or the abort) this long first ("2s", ≤ 1h)
//	jitter       uniform ± around delay, never below 0 (needs delay)
//	netns        "/proc/<pid>/ns/net" or "/run/netns/<name>"; default: the agent's own
//	drain        at revert, how long connections the proxy holds are given to finish (default
//	             5s, ≤ 5m); new connections go to the app directly from the start of it
//
// At least one of abort, grpc_status or delay is required.
//
// # Lifecycle
//
// Plan names the table (from the run's key) and records the namespace and the port, and
// checks that the app listens on the port and no chaoscron table redirects it already:
// nothing is changed. Inject listens on a free port in the namespace, starts the proxy there,
// then creates the table that redirects the port to it; if anything fails, what was made is
// removed before Inject returns (never a redirect to a port nobody serves). Revert removes
// the redirect rule first (new connections go straight to the app), drains the proxy if this
// process runs it, then deletes the table; in another process (recovery after a crash) there
// is no proxy left, and deleting the table is the whole revert. Sweep deletes chaoscron's tables in the fault's namespace that no kept
// undo owns (a lost journal). Foreign tables are never touched: see package nft's mark.
//
// Requirements: CAP_NET_ADMIN (nftables); with netns, also CAP_SYS_ADMIN (setns). A kernel
// with nf_tables, nft_nat, nft_redir and nft_fib (Linux 5.2 or later for inet nat chains).
package request

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chaoscron/chaoscron/pkg/fault"
	"github.com/chaoscron/chaoscron/pkg/fault/internal/netns"
	"github.com/chaoscron/chaoscron/pkg/fault/request/nft"
)

func init() { fault.Register("http", New) }

// Fault is a configured http fault. Everything Revert and Sweep need is in the undo and in
// the kernel; the only state is the proxies this process runs (package-level, so that any
// Fault built from the same params can drain another's).
type Fault struct {
	cfg     config
	proc    string
	seed    uint64
	observe func(string)
	log     *slog.Logger

	// beforeRedirect, if set, runs after the proxy is up and before the table is created.
	// Tests use it to make Inject fail, or the process die, at that point.
	beforeRedirect func() error
}

var (
	_ fault.Fault     = (*Fault)(nil)
	_ fault.Sweeper   = (*Fault)(nil)
	_ fault.Describer = (*Fault)(nil)
	_ fault.Claimer   = (*Fault)(nil)
)

// New validates params and builds a Fault. It reads nothing from the system.
func New(p fault.Params, env fault.Env) (fault.Fault, error) {
	env = env.WithDefaults()
	cfg, err := parse(p, env)
	if err != nil {
		return nil, err
	}
	return &Fault{cfg: cfg, proc: env.Proc, seed: env.Seed, observe: env.Observe, log: env.Log}, nil
}

// Claims says what no two experiments may fault at once: the port, in its namespace.
func (f *Fault) Claims() []string {
	ns := f.cfg.netns
	if ns == "" {
		ns = "the agent's network namespace"
	}
	return []string{fmt.Sprintf("http port %d in %s", f.cfg.port, ns)}
}

// Describe says in one line what Inject will do.
func (f *Fault) Describe() string {
	r := f.cfg.rule
	var what []string
	if r.Abort != 0 {
		what = append(what, "abort "+strconv.Itoa(r.Abort))
	}
	if r.GRPC != 0 {
		what = append(what, "grpc "+grpcCodes[r.GRPC])
	}
	if r.Delay != 0 {
		d := "delay " + r.Delay.String()
		if r.Jitter != 0 {
			d += "±" + r.Jitter.String()
		}
		what = append(what, d)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "http %s on %s%% of ", strings.Join(what, ", "), strconv.FormatFloat(r.Percent, 'f', -1, 64))
	if len(r.Methods) > 0 {
		b.WriteString(strings.Join(r.Methods, "|") + " ")
	}
	switch {
	case r.PathRE != nil:
		b.WriteString("paths matching " + r.PathRE.String())
	case r.Path != "":
		b.WriteString(r.Path + "*")
	default:
		b.WriteString("requests")
	}
	if len(r.Headers) > 0 {
		fmt.Fprintf(&b, " with %d header match(es)", len(r.Headers))
	}
	fmt.Fprintf(&b, " to port %d", f.cfg.port)
	if f.cfg.netns != "" {
		fmt.Fprintf(&b, " in %s", f.cfg.netns)
	}
	return b.String()
}

// Plan resolves the namespace, names the table, and checks that the app listens on the
// port and that no chaoscron redirect has it already, changing nothing.
func (f *Fault) Plan(ctx context.Context, run string) (fault.Undo, error) {
	ns, err := netns.Open(f.proc, f.cfg.netns, 0)
	if err != nil {
		return nil, fmt.Errorf("http: plan: %w", err)
	}
	defer ns.Close()
	if err := f.checkFree(ns); err != nil {
		return nil, fmt.Errorf("http: plan: %w", err)
	}
	switch ok, err := listening(f.proc, ns, f.cfg.port); {
	case err != nil:
		return nil, fmt.Errorf("http: plan: %w", err)
	case !ok:
		return nil, fmt.Errorf("http: plan: nothing listens on tcp port %d in %s: is it the app's port?", f.cfg.port, ns)
	}
	return json.Marshal(undo{
		Version: undoVersion, Run: run, Netns: f.cfg.netns, NetnsInode: ns.Inode,
		Table: nft.TableName(run), Port: f.cfg.port,
	})
}

// checkFree fails when a chaoscron table redirects the port already, or nf_tables is missing.
func (f *Fault) checkFree(ns *netns.NS) error {
	c, err := nft.Open(ns.FD())
	if err != nil {
		return fmt.Errorf("nftables in %s: %w", ns, err)
	}
	defer c.Close()
	rs, err := c.List()
	if err != nil {
		return fmt.Errorf("in %s: %w", ns, err)
	}
	for _, r := range rs {
		if r.Port == f.cfg.port {
			return fmt.Errorf("tcp port %d in %s: %w (%s): another http run is active on it, or one was left behind", f.cfg.port, ns, nft.ErrBusy, r.Table)
		}
	}
	return nil
}

// Inject starts the proxy in the namespace and then redirects the port to it. On error,
// everything made is removed before it returns.
func (f *Fault) Inject(ctx context.Context, plan fault.Undo) (fault.Undo, error) {
	u, err := decodeUndo(plan)
	if err != nil {
		return nil, err
	}
	if u.Port != f.cfg.port {
		return plan, fmt.Errorf("http: inject: the plan redirects port %d, this fault port %d: planned with other parameters", u.Port, f.cfg.port)
	}
	ns, err := netns.Open(f.proc, u.Netns, u.NetnsInode)
	if err != nil {
		return plan, fmt.Errorf("http: inject: %w", err)
	}
	s, err := f.start(ns, u)
	if err != nil {
		ns.Close()
		return plan, fmt.Errorf("http: inject: %w", err)
	}
	u.ProxyPort = s.port
	out, err := json.Marshal(u)
	if err != nil {
		return plan, errors.Join(err, f.Revert(context.WithoutCancel(ctx), plan))
	}
	f.log.Debug("http fault injected", "table", u.Table, "netns", ns.String(), "port", u.Port, "proxy_port", s.port)
	return out, nil
}

// start does Inject's work: listen, serve, redirect; or, on any error, undo all of it.
func (f *Fault) start(ns *netns.NS, u undo) (s *session, err error) {
	if err := f.checkFree(ns); err != nil {
		return nil, err
	}
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp", ":0"); return err }); err != nil {
		return nil, fmt.Errorf("listen for the proxy in %s: %w", ns, err)
	}
	s = &session{ns: ns, ln: ln, port: uint16(ln.Addr().(*net.TCPAddr).Port), drain: f.cfg.drain, served: make(chan struct{})}
	srv, err := newServer(f.cfg.rule, f.seed, s.dial, f.observe, f.log)
	if err != nil {
		ln.Close()
		return nil, err
	}
	s.srv = srv
	go func() {
		defer close(s.served)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
			f.log.Warn("http fault proxy stopped", "table", u.Table, "err", err)
		}
	}()
	fail := func(err error) (*session, error) {
		// The table may exist if the failure came after the kernel took the batch.
		c, cerr := nft.Open(ns.FD())
		if cerr == nil {
			_, cerr = c.Delete(u.Table)
			c.Close()
		}
		s.stop(context.Background(), 0)
		return nil, errors.Join(err, cerr)
	}
	if f.beforeRedirect != nil {
		if err := f.beforeRedirect(); err != nil {
			return fail(err)
		}
	}
	c, err := nft.Open(ns.FD())
	if err != nil {
		return fail(fmt.Errorf("nftables in %s: %w", ns, err))
	}
	err = c.Create(u.Table, u.Port, s.port)
	c.Close()
	if err != nil {
		return fail(fmt.Errorf("in %s: %w", ns, err))
	}
	sessions.add(u.Table, s)
	return s, nil
}

// Revert stops the redirect, drains this process's proxy for it if there is one, then
// deletes the table. New connections go to the app from the first step; the table stays
// through the drain so that connections the proxy holds keep their translation (see package
// nft). In another process (recovery) there is no proxy, and deleting the table is the whole
// revert. A table or a namespace already gone counts as reverted.
func (f *Fault) Revert(ctx context.Context, raw fault.Undo) error {
	u, err := decodeUndo(raw)
	if err != nil {
		return err
	}
	ns, err := netns.Open(f.proc, u.Netns, u.NetnsInode)
	if errors.Is(err, netns.ErrGone) {
		f.log.Info("network namespace gone, and the redirect with it", "netns", u.Netns, "run", u.Run)
		if s := sessions.take(u.Table); s != nil {
			s.stop(ctx, 0)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("http: revert: %w", err)
	}
	defer ns.Close()
	c, err := nft.Open(ns.FD())
	if err != nil {
		return fmt.Errorf("http: revert: nftables in %s: %w", ns, err)
	}
	defer c.Close()
	if s := sessions.peek(u.Table); s != nil {
		if err := c.Stop(u.Table); err != nil {
			// The redirect may still be in place: the proxy must keep serving it.
			return fmt.Errorf("http: revert in %s: %w", ns, err)
		}
		sessions.take(u.Table)
		s.stop(ctx, s.drain)
	}
	if _, err := c.Delete(u.Table); err != nil {
		return fmt.Errorf("http: revert in %s: %w", ns, err)
	}
	return nil
}

// Sweep deletes chaoscron's tables in the fault's namespace that no undo in keep owns, and
// describes each ("removed table inet chaoscron_http_x (tcp port 8080 to 41234) in ...").
// keep may hold undos of other fault types: whatever does not decode as an http undo owns
// nothing.
func (f *Fault) Sweep(ctx context.Context, keep []fault.Undo) ([]string, error) {
	ns, err := netns.Open(f.proc, f.cfg.netns, 0)
	if err != nil {
		if errors.Is(err, netns.ErrGone) || errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("http: sweep: %w", err)
	}
	defer ns.Close()
	owned := map[string]bool{}
	for _, raw := range keep {
		var u undo
		if json.Unmarshal(raw, &u) == nil && u.NetnsInode == ns.Inode && u.Table != "" {
			owned[u.Table] = true
		}
	}
	c, err := nft.Open(ns.FD())
	if err != nil {
		return nil, fmt.Errorf("http: sweep: nftables in %s: %w", ns, err)
	}
	defer c.Close()
	rs, err := c.List()
	if err != nil {
		return nil, fmt.Errorf("http: sweep in %s: %w", ns, err)
	}
	var removed []string
	var errs []error
	for _, r := range rs {
		if owned[r.Table] {
			continue
		}
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("http: sweep: %w", err))
			break
		}
		did, err := c.Delete(r.Table)
		if err != nil {
			errs = append(errs, fmt.Errorf("http: sweep in %s: %w", ns, err))
			continue
		}
		if s := sessions.take(r.Table); s != nil {
			s.stop(ctx, 0)
		}
		if did {
			f.log.Warn("swept chaoscron redirect no run owns", "table", r.Table, "netns", ns.String())
			removed = append(removed, fmt.Sprintf("removed %s in %s", r, ns))
		}
	}
	return removed, errors.Join(errs...)
}

// dialTimeout bounds the proxy's connect to the app: the app is in the same namespace, and
// one that does not answer in this long is as good as down (the kernel would wait minutes).
const dialTimeout = 10 * time.Second

// session is one run's proxy, in this process.
type session struct {
	ns     *netns.NS
	ln     net.Listener
	port   uint16
	srv    server
	drain  time.Duration
	served chan struct{}
}

// dial connects to where the client was going, from inside the namespace. A connection
// that was not redirected (someone dialled the proxy's port itself) has no such address and
// is refused, so the proxy can never connect to itself.
func (s *session) dial(ctx context.Context, client net.Conn) (net.Conn, error) {
	dst, err := nft.OriginalDst(client)
	if err != nil {
		return nil, err
	}
	if dst.Port() == s.port {
		return nil, fmt.Errorf("connection to the proxy's own port %d: refused", s.port)
	}
	var c net.Conn
	err = s.ns.Do(func() (err error) {
		c, err = (&net.Dialer{Timeout: dialTimeout}).DialContext(ctx, "tcp", dst.String())
		return err
	})
	return c, err
}

// stop drains the proxy (for up to drain, and no longer than ctx allows), then releases
// the namespace.
func (s *session) stop(ctx context.Context, drain time.Duration) {
	dctx, cancel := context.WithTimeout(ctx, drain)
	defer cancel()
	_ = s.srv.Shutdown(dctx) // past the drain, held connections are closed: that is the point
	s.ln.Close()
	<-s.served
	s.ns.Close()
}

// sessions are the proxies this process runs, by table name.
var sessions = &registry{m: map[string]*session{}}

type registry struct {
	mu sync.Mutex
	m  map[string]*session
}

func (r *registry) add(table string, s *session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m[table] = s
}

func (r *registry) peek(table string) *session {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[table]
}

func (r *registry) take(table string) *session {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.m[table]
	delete(r.m, table)
	return s
}
