// Package nft is the http fault's redirect: an nftables table of chaoscron's own, in a given
// network namespace, that sends new inbound TCP connections to one port on to the agent's
// proxy, over netlink (github.com/google/nftables): no nft binary is needed.
//
// What one redirect is, as `nft list table inet chaoscron_http_<key>` shows it:
//
//	table inet chaoscron_http_<key> {
//		chain chaoscron {
//			type nat hook prerouting priority dstnat; policy accept;
//			ct state comment "chaoscron http 8080>41234"
//			fib daddr type local tcp dport 8080 redirect to :41234 comment "chaoscron http redirect"
//		}
//	}
//
// Prerouting sees only packets that arrive from outside the namespace: connections the
// namespace opens itself (the proxy's own to the app, a health check over loopback, another
// container of the pod calling localhost) pass through output, never prerouting, and reach the
// app directly. "fib daddr type local" keeps traffic the namespace routes elsewhere (a host's
// bridged containers) out of it. Only the first packet of a connection passes a nat chain:
// connections open when the table is created go on to the app.
//
// Stopping is two steps. Stop deletes the redirect rule: new connections go to the app. The
// table stays while the proxy drains, because the kernel translates the packets of
// connections already redirected only while conntrack and a nat chain are registered in the
// namespace. In a pod nothing else may hold them: conntrack is held by the expressions that
// need it, and once the redirect rule is gone, by the first rule's "ct state" alone (which
// decides nothing). Without them a held connection's packets would reach the app's port
// untranslated and be reset. Delete then removes the table.
//
// Ownership. The table's name starts with Prefix; the mark is the chain named Chain whose
// first rule, which does nothing, has the comment (rule userdata, which the kernel keeps)
// "chaoscron http <port>><proxy port>". A table with the prefix but without
// the mark is somebody else's and is never deleted or counted. The table, its chain and both
// rules are created in one netlink batch, which the kernel applies whole or not at all: a
// redirect is never half-installed.
//
// Requirements: CAP_NET_ADMIN in the namespace; a kernel with nf_tables, nft_nat, nft_redir
// and nft_fib (inet nat chains: Linux 5.2 or later).
package nft

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"syscall"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

const (
	// Prefix starts the name of every table chaoscron creates.
	Prefix = "chaoscron_http_"
	// Chain is the name of the one chain in chaoscron's table.
	Chain = "chaoscron"
	// mark starts the comment of the table's first rule: the ownership mark.
	mark = "chaoscron http "
	// redirectComment is the comment of the redirect rule, the one Stop deletes.
	redirectComment = "chaoscron http redirect"
	// maxName is well under the kernel's NFT_NAME_MAXLEN (256).
	maxName = 64
)

// ErrNoNFTables is returned (wrapped) when the kernel has no nf_tables, or not the parts a
// redirect needs.
var ErrNoNFTables = errors.New("the kernel has no nf_tables (or no nat, redirect or fib support for it)")

// ErrBusy is returned (wrapped) by Create when a chaoscron table already redirects the port.
var ErrBusy = errors.New("port already redirected by chaoscron")

// Redirect is one of chaoscron's tables as found in the kernel.
type Redirect struct {
	Table  string // full name, with Prefix
	Port   uint16 // redirected port
	To     uint16 // the proxy's port
	Active bool   // the redirect rule is there (false: stopped, the table kept for a drain)
}

func (r Redirect) String() string {
	return fmt.Sprintf("table inet %s (tcp port %d to %d)", r.Table, r.Port, r.To)
}

// TableName makes a table name from a run key: Prefix, then the key with every character
// that is not a letter, digit or underscore replaced by "_"; a key too long for it is cut
// and given a hash of the whole, so that two keys never share a name by being cut alike.
func TableName(key string) string {
	var b strings.Builder
	for _, r := range key {
		if r < 128 && (r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	s := b.String()
	if len(Prefix)+len(s) > maxName || s != key {
		// A sanitised key could meet another one ("a-1" and "a_1"): the hash keeps them apart.
		h := fnv.New32a()
		h.Write([]byte(key))
		tail := fmt.Sprintf("_%08x", h.Sum32())
		if keep := maxName - len(Prefix) - len(tail); len(s) > keep {
			s = s[:keep]
		}
		s += tail
	}
	return Prefix + s
}

// Conn talks nftables in one network namespace.
type Conn struct{ c *nftables.Conn }

// Open returns a Conn for the namespace that fd refers to (0: the caller's own). Each call
// dials a netlink socket of its own: a plan, inject or revert makes a handful of calls, once
// per run, and a socket per call leaves nothing from one call for the next to read.
func Open(fd int) (*Conn, error) {
	c, err := nftables.New(nftables.WithNetNSFd(fd))
	if err != nil {
		return nil, fmt.Errorf("netfilter netlink socket: %w", classify(err))
	}
	return &Conn{c: c}, nil
}

// Close releases the Conn. It holds no socket between calls today; callers close it anyway.
func (n *Conn) Close() error { return n.c.CloseLasting() }

// List returns chaoscron's tables: those with the prefix that carry the mark.
func (n *Conn) List() ([]Redirect, error) {
	ts, err := n.c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("list nftables tables: %w", classify(err))
	}
	var out []Redirect
	for _, t := range ts {
		if !strings.HasPrefix(t.Name, Prefix) {
			continue
		}
		if r, _, ok := n.owned(t.Name); ok {
			out = append(out, r)
		}
	}
	return out, nil
}

// owned reads table name and reports whether it is chaoscron's (a chain named Chain whose
// first rule carries the mark), and the handles of its redirect rules.
func (n *Conn) owned(name string) (Redirect, []*nftables.Rule, bool) {
	t := &nftables.Table{Name: name, Family: nftables.TableFamilyINet}
	rules, err := n.c.GetRules(t, &nftables.Chain{Name: Chain, Table: t})
	if err != nil || len(rules) == 0 {
		return Redirect{}, nil, false
	}
	c, ok := userdata.GetString(rules[0].UserData, userdata.TypeComment)
	if !ok {
		return Redirect{}, nil, false
	}
	port, to, ok := parseMark(c)
	if !ok {
		return Redirect{}, nil, false
	}
	var redirects []*nftables.Rule
	for _, r := range rules[1:] {
		if c, _ := userdata.GetString(r.UserData, userdata.TypeComment); c == redirectComment {
			redirects = append(redirects, r)
		}
	}
	return Redirect{Table: name, Port: port, To: to, Active: len(redirects) > 0}, redirects, true
}

func markOf(port, to uint16) string { return fmt.Sprintf("%s%d>%d", mark, port, to) }

func parseMark(c string) (port, to uint16, ok bool) {
	rest, ok := strings.CutPrefix(c, mark)
	if !ok {
		return 0, 0, false
	}
	a, b, ok := strings.Cut(rest, ">")
	if !ok {
		return 0, 0, false
	}
	p, err1 := strconv.ParseUint(a, 10, 16)
	q, err2 := strconv.ParseUint(b, 10, 16)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return uint16(p), uint16(q), true
}

// Create makes table (a name from TableName) redirecting new inbound TCP connections to port
// on to port to, in one batch. It refuses with ErrBusy when another chaoscron table already
// redirects port, and fails (EEXIST) when a table of that name exists.
func (n *Conn) Create(table string, port, to uint16) error {
	if !strings.HasPrefix(table, Prefix) || len(table) > maxName {
		return fmt.Errorf("nftables table %q: not a chaoscron table name", table)
	}
	if port == 0 || to == 0 {
		return fmt.Errorf("nftables table %s: port %d to %d: ports must not be 0", table, port, to)
	}
	have, err := n.List()
	if err != nil {
		return err
	}
	for _, r := range have {
		if r.Port == port {
			return fmt.Errorf("tcp port %d: %w (%s): another http run is active on it, or one was left behind", port, ErrBusy, r.Table)
		}
	}
	t := n.c.CreateTable(&nftables.Table{Name: table, Family: nftables.TableFamilyINet})
	ch := n.c.AddChain(&nftables.Chain{
		Name: Chain, Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest,
	})
	n.c.AddRule(&nftables.Rule{
		Table: t, Chain: ch,
		// Loads the connection's state and does nothing with it: what it is for is the
		// conntrack reference the kernel takes for a ct expression (see the package doc).
		Exprs:    []expr.Any{&expr.Ct{Register: 1, Key: expr.CtKeySTATE}},
		UserData: userdata.AppendString(nil, userdata.TypeComment, markOf(port, to)),
	})
	n.c.AddRule(&nftables.Rule{
		Table: t, Chain: ch,
		Exprs:    redirectExprs(port, to),
		UserData: userdata.AppendString(nil, userdata.TypeComment, redirectComment),
	})
	if err := n.c.Flush(); err != nil {
		if errors.Is(err, syscall.ENOENT) {
			// The table is new: what is missing is a chain type or an expression (nat,
			// redir, fib), which the kernel names ENOENT.
			err = fmt.Errorf("%w: %w", ErrNoNFTables, err)
		}
		return fmt.Errorf("create nftables table %s: %w", table, classify(err))
	}
	return nil
}

// redirectExprs is "fib daddr type local tcp dport <port> redirect to :<to>".
func redirectExprs(port, to uint16) []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
		&expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(to)},
		&expr.Redir{RegisterProtoMin: 1},
	}
}

// Delete removes table if it is chaoscron's. A table that is not there counts as deleted
// (true is returned only when something was removed); a table of that name without the mark
// is left alone and reported as an error.
func (n *Conn) Delete(table string) (bool, error) {
	ts, err := n.c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("list nftables tables: %w", classify(err))
	}
	found := false
	for _, t := range ts {
		found = found || t.Name == table
	}
	if !found {
		return false, nil
	}
	if _, _, ok := n.owned(table); !ok {
		return false, fmt.Errorf("nftables table %s has chaoscron's name but not its mark: left alone", table)
	}
	n.c.DelTable(&nftables.Table{Name: table, Family: nftables.TableFamilyINet})
	if err := n.c.Flush(); err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return false, nil // deleted between the list and now
		}
		return false, fmt.Errorf("delete nftables table %s: %w", table, classify(err))
	}
	return true, nil
}

// Stop deletes table's redirect rule, if table is chaoscron's, and keeps the table (see the
// package doc). A table or rule that is not there counts as stopped.
func (n *Conn) Stop(table string) error {
	ts, err := n.c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return fmt.Errorf("list nftables tables: %w", classify(err))
	}
	found := false
	for _, t := range ts {
		found = found || t.Name == table
	}
	if !found {
		return nil
	}
	_, rules, ok := n.owned(table)
	if !ok {
		return fmt.Errorf("nftables table %s has chaoscron's name but not its mark: left alone", table)
	}
	if len(rules) == 0 {
		return nil
	}
	for _, r := range rules {
		if err := n.c.DelRule(r); err != nil {
			return fmt.Errorf("stop nftables table %s: %w", table, err)
		}
	}
	if err := n.c.Flush(); err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return nil // deleted between the list and now
		}
		return fmt.Errorf("stop nftables table %s: %w", table, classify(err))
	}
	return nil
}

// classify wraps the errors that mean "no nf_tables here" with ErrNoNFTables.
func classify(err error) error {
	if err == nil {
		return nil
	}
	for _, e := range []error{syscall.EPROTONOSUPPORT, syscall.EAFNOSUPPORT, syscall.EOPNOTSUPP} {
		if errors.Is(err, e) {
			return fmt.Errorf("%w: %w", ErrNoNFTables, err)
		}
	}
	return err
}
