// Package network is the "network" fault: netem (delay, jitter, loss, duplication,
// corruption, reordering, rate) or tbf (bandwidth) on the egress of one or more interfaces,
// set up over rtnetlink with go-tc. No tc binary is needed at run time.
//
// Parameters (units as tc users write them; everything is checked by New):
//
//	delay             added latency, "200ms" (≤ 1h)
//	jitter            ± variation of the delay, "20ms" (needs delay)
//	correlation       of the jitter with the previous packet's, "25%" (needs jitter)
//	distribution      of the jitter: uniform (default), normal, pareto, paretonormal
//	                  (needs jitter; the tables are computed as iproute2 computes its .dist files)
//	loss              share of packets dropped, "1.5%"
//	loss_correlation  "25%" (needs loss)
//	duplicate         "1%"
//	corrupt           "0.1%"
//	reorder           share of packets sent at once, ahead of the delayed ones, "25%" (needs delay)
//	gap               reorder every gap-th packet candidate (default 1, needs reorder)
//	rate              egress rate limit, "10mbit", "512kbit", "100kbps" (tc-rate units)
//	limit             packets netem may hold (default 1000; never 0, which drops everything)
//	bandwidth         a tbf instead of netem, at this rate ("1mbit", tc-rate units, 8kbit to
//	                  34Gbit); not with the netem options above (netem's rate does both)
//	bandwidth_burst   bytes the bucket holds ("32KiB"; at least 1514, at most 4s of the rate);
//	                  default: 10ms of the rate, at least 16KiB (and at most 4s of the rate)
//	bandwidth_limit   bytes queued before drops ("64KiB", at least 1514); default: the burst
//	                  plus 50ms of the rate (what `tc ... tbf latency 50ms` computes)
//	interfaces        names; default: every interface with a default route (main table,
//	                  IPv4 or IPv6), never lo unless named
//	netns             "/proc/<pid>/ns/net" or "/run/netns/<name>"; default: the agent's own
//	ports             only traffic from or to these ports is faulted
//	cidrs             only traffic to these destinations is faulted ("10.0.0.0/8", "fd00::1");
//	                  with ports too, a packet must match both
//	exclude_ports     never faulted, from or to (default: the agent's own listen port, so its
//	                  metrics keep flowing; [] to fault those too)
//
// At least one of delay, loss, duplicate, corrupt, reorder, rate or bandwidth is required.
//
// # What is affected
//
// Egress only (what leaves the interface), as with `tc qdisc add dev X root netem`: on lo a
// delay counts twice per round trip. ports and exclude_ports match the source or the
// destination port (a server's replies and a client's requests alike) of IPv4 packets without
// IP options and IPv6 packets without extension headers, whatever the transport (TCP, UDP,
// SCTP); other packets never match a port (with exclude_ports, they stay faulted). cidrs
// match the destination address. Non-IP traffic (ARP) is faulted only when neither ports
// nor cidrs are set.
//
// # What is created, and ownership
//
// On each interface chaoscron puts a prio qdisc at the root with handle c4a0: (its mark), a
// pfifo c4a2: on band c4a0:1 for traffic left alone, netem (or tbf) c4a1: on band c4a0:2, and
// u32 filters steering packets between the bands (see filter.go). A bandwidth fault with
// nothing to steer (no ports, cidrs or exclude_ports) is a tbf alone at the root, c4a0:. Only
// a kernel default root (handle 0:, e.g. pfifo_fast, fq_codel, mq, noqueue) is ever replaced:
// a root somebody set up (handle ≠ 0 and not chaoscron's c4a0: of a kind it puts there, e.g.
// another tool's tbf 1: or htb, or an htb that picked the handle c4a0:) is never touched and
// the fault is refused with ErrForeignRoot. The handle is the only mark: a tbf or prio that
// another tool put at c4a0: is taken for chaoscron's. The qdisc is added without
// NLM_F_REPLACE, so the kernel refuses to replace a non-default root even if one appears
// between the check and the add. Revert deletes the root with handle c4a0: and the kind the
// undo names (prio or tbf), nothing else (children and filters go with it); deleting it brings
// the kernel default back, which is what was there. "Already gone" (EINVAL invalid handle,
// ENOENT, no such device, namespace gone) counts as reverted.
//
// Two network runs on one interface at once are refused: the second finds c4a0: in place.
//
// Plan decides everything before anything changes: the namespace (path and inode), each
// interface's name and index, the handle and kind. It is the undo the journal holds, so an
// agent that dies between the first and the second interface is recovered from it: Revert
// walks every planned interface. Sweep (fault.Sweeper) removes chaoscron roots that no undo
// owns, for a journal that was lost.
//
// Requirements: CAP_NET_ADMIN; with netns, also CAP_SYS_ADMIN (setns). Kernel 4.15 or later
// with sch_prio, sch_netem and cls_u32 (modules load on demand on most distributions); a
// bandwidth fault needs sch_tbf, and sch_prio and cls_u32 only when it steers; it also reads
// the scheduler clock from <proc>/net/psched, as tc does.
package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/chaoscron/chaoscron/pkg/fault"
	"github.com/chaoscron/chaoscron/pkg/fault/internal/netns"
)

func init() { fault.Register("network", New) }

// ErrForeignRoot is returned (wrapped) when an interface has a root qdisc chaoscron did not
// create and will not replace.
var ErrForeignRoot = errors.New("root qdisc belongs to someone else")

// ErrBusy is returned (wrapped) when an interface already carries chaoscron's qdisc: another
// run is active on it, or one was left behind (recovery and sweeping remove those).
var ErrBusy = errors.New("interface already has chaoscron's qdisc")

// Fault is a configured network fault. It holds no state between calls: everything Revert
// and Sweep need is in the undo and in the kernel, so any Fault built from the same params
// (in any process) can revert another's run.
type Fault struct {
	cfg  config
	proc string
	log  *slog.Logger

	// afterInterface, if set, runs after Inject has put the fault on interface i (0-based)
	// of the plan. Tests use it to make the next interface fail or the process die between
	// two interfaces.
	afterInterface func(i int, name string) error
}

var (
	_ fault.Fault     = (*Fault)(nil)
	_ fault.Sweeper   = (*Fault)(nil)
	_ fault.Describer = (*Fault)(nil)
)

// New validates params and builds a Fault. It reads nothing from the system: interfaces and
// the namespace are resolved by Plan, so a config can be validated on another machine.
func New(p fault.Params, env fault.Env) (fault.Fault, error) {
	env = env.WithDefaults()
	cfg, err := parse(p, env)
	if err != nil {
		return nil, err
	}
	return &Fault{cfg: cfg, proc: env.Proc, log: env.Log}, nil
}

// Describe says in one line what Inject will do.
func (f *Fault) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s on ", f.cfg.qdisc())
	if len(f.cfg.interfaces) == 0 {
		b.WriteString("the default-route interfaces")
	} else {
		b.WriteString(strings.Join(f.cfg.interfaces, ", "))
	}
	if f.cfg.netns != "" {
		fmt.Fprintf(&b, " in %s", f.cfg.netns)
	}
	s := f.cfg.scope
	var only []string
	if len(s.Ports) > 0 {
		only = append(only, "ports "+joinPorts(s.Ports))
	}
	if len(s.CIDRs) > 0 {
		var c []string
		for _, p := range s.CIDRs {
			c = append(c, p.String())
		}
		only = append(only, "to "+strings.Join(c, ", "))
	}
	if len(only) > 0 {
		fmt.Fprintf(&b, ", only %s", strings.Join(only, " and "))
	}
	if len(s.Exclude) > 0 {
		fmt.Fprintf(&b, ", except ports %s", joinPorts(s.Exclude))
	}
	return b.String()
}

func joinPorts(ps []uint16) string {
	var s []string
	for _, p := range ps {
		s = append(s, fmt.Sprint(p))
	}
	return strings.Join(s, ", ")
}

// Plan resolves the namespace and the interfaces and checks each one's root qdisc, changing
// nothing. The undo it returns lists every interface as planned.
func (f *Fault) Plan(ctx context.Context, run string) (fault.Undo, error) {
	ns, err := netns.Open(f.proc, f.cfg.netns, 0)
	if err != nil {
		return nil, fmt.Errorf("network: plan: %w", err)
	}
	defer ns.Close()
	c, err := dial(ns)
	if err != nil {
		return nil, fmt.Errorf("network: plan: %w", err)
	}
	defer c.Close()

	ls, err := links(c)
	if err != nil {
		return nil, fmt.Errorf("network: plan in %s: %w", ns, err)
	}
	var targets []link
	if len(f.cfg.interfaces) == 0 {
		idx, err := defaultRouteLinks(c)
		if err != nil {
			return nil, fmt.Errorf("network: plan in %s: %w", ns, err)
		}
		for _, i := range idx {
			if l, ok := byIndex(ls, i); ok && l.Name != "lo" {
				targets = append(targets, l)
			}
		}
		if len(targets) == 0 {
			return nil, fmt.Errorf("network: plan: no interface has a default route in %s: name the interfaces (there are: %s)", ns, names(ls))
		}
	} else {
		for _, name := range f.cfg.interfaces {
			l, ok := byName(ls, name)
			if !ok {
				return nil, fmt.Errorf("network: plan: no interface %q in %s (there are: %s)", name, ns, names(ls))
			}
			targets = append(targets, l)
		}
	}
	roots, err := rootQdiscs(c)
	if err != nil {
		return nil, fmt.Errorf("network: plan in %s: %w", ns, err)
	}
	u := undo{
		Version: undoVersion, Run: run, Netns: f.cfg.netns, NetnsInode: ns.Inode,
		Qdisc: qdiscRef{Kind: f.cfg.rootKind(), Handle: rootHandle},
	}
	if f.cfg.tbf.Rate > 0 {
		u.Tbf = f.cfg.tbf.String()
	} else {
		u.Netem = f.cfg.netem.String()
	}
	for _, l := range targets {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("network: plan: %w", err)
		}
		root := roots[l.Index]
		if err := checkRoot(l.Name, root); err != nil {
			return nil, fmt.Errorf("network: plan: %w", err)
		}
		u.Interfaces = append(u.Interfaces, ifaceUndo{Name: l.Name, Index: l.Index, State: statePlanned, Previous: &root})
	}
	return json.Marshal(u)
}

// checkRoot refuses an interface whose root is not a kernel default.
func checkRoot(name string, root qdiscRef) error {
	switch {
	case root.Handle == 0:
		return nil
	case root.owned() == nil:
		return fmt.Errorf("%s: %w (%s): another run is active on it, or one was left behind", name, ErrBusy, root)
	default:
		return fmt.Errorf("%s: %w: %s is not a kernel default and chaoscron will not replace it", name, ErrForeignRoot, root)
	}
}

// Inject puts the fault on every planned interface, in order. If one fails, those done so far
// are rolled back, and the returned undo marks each interface untouched, or applied if its
// rollback failed too (so Revert still removes it).
func (f *Fault) Inject(ctx context.Context, plan fault.Undo) (fault.Undo, error) {
	u, err := decodeUndo(plan)
	if err != nil {
		return nil, err
	}
	// From here on, every return says which interfaces were touched: a caller that reverts
	// what Inject returned must not remove another run's fault from an interface this run
	// never reached (returning nil would make the runner revert the plan instead).
	for i := range u.Interfaces {
		u.Interfaces[i].State = stateUntouched
	}
	result := func(err error) (fault.Undo, error) {
		b, merr := json.Marshal(u)
		return b, errors.Join(err, merr)
	}
	// Revert deletes the kind the plan names: the layout must be the one planned.
	if k := f.cfg.rootKind(); u.Qdisc.Kind != k {
		return result(fmt.Errorf("network: inject: the plan has %s at the root, this fault puts %s there: planned with other parameters", u.Qdisc, k))
	}
	// Built before anything changes: a tbf needs the scheduler clock, which may be unreadable.
	leaf, err := f.cfg.leaf(f.proc)
	if err != nil {
		return result(fmt.Errorf("network: inject: %w", err))
	}
	ns, err := netns.Open(f.proc, u.Netns, u.NetnsInode)
	if err != nil {
		return result(fmt.Errorf("network: inject: %w", err))
	}
	defer ns.Close()
	s, err := newSession(ns)
	if err != nil {
		return result(fmt.Errorf("network: inject: %w", err))
	}
	defer s.Close()

	var ierr error
	for i := range u.Interfaces {
		ifc := &u.Interfaces[i]
		if err := ctx.Err(); err != nil {
			ierr = fmt.Errorf("network: inject: %w", err)
			break
		}
		prev, applied, err := s.inject(ifc.Name, ifc.Index, f.cfg, leaf)
		if applied {
			ifc.State = stateApplied
		}
		if prev != nil {
			ifc.Previous = prev
		}
		if err != nil {
			ierr = fmt.Errorf("network: inject on %s in %s: %w", ifc.Name, ns, err)
			break
		}
		f.log.Debug("network fault injected", "interface", ifc.Name, "netns", ns.String(), "qdisc", f.cfg.qdisc())
		if f.afterInterface != nil {
			if err := f.afterInterface(i, ifc.Name); err != nil {
				ierr = fmt.Errorf("network: inject: %w", err)
				break
			}
		}
	}
	if ierr != nil {
		// Roll back, last first. An interface whose rollback fails stays applied.
		for i := len(u.Interfaces) - 1; i >= 0; i-- {
			ifc := &u.Interfaces[i]
			if ifc.State != stateApplied {
				continue
			}
			if _, err := s.revert(ifc.Index, u.Qdisc); err != nil {
				ierr = errors.Join(ierr, fmt.Errorf("network: roll back %s: %w", ifc.Name, err))
				continue
			}
			ifc.State = stateUntouched
		}
	}
	return result(ierr)
}

// Revert removes chaoscron's root from every interface of undo that is not marked untouched.
// Interfaces, qdiscs or a namespace already gone count as reverted. It tries every interface
// even when one fails, and reports all failures.
func (f *Fault) Revert(ctx context.Context, raw fault.Undo) error {
	u, err := decodeUndo(raw)
	if err != nil {
		return err
	}
	todo := 0
	for _, ifc := range u.Interfaces {
		if ifc.State != stateUntouched {
			todo++
		}
	}
	if todo == 0 {
		return nil
	}
	ns, err := netns.Open(f.proc, u.Netns, u.NetnsInode)
	if errors.Is(err, netns.ErrGone) {
		f.log.Info("network namespace gone, and the fault with it", "netns", netns.Name(u.Netns), "run", u.Run)
		return nil
	}
	if err != nil {
		return fmt.Errorf("network: revert: %w", err)
	}
	defer ns.Close()
	s, err := newSession(ns)
	if err != nil {
		return fmt.Errorf("network: revert: %w", err)
	}
	defer s.Close()

	var errs []error
	for _, ifc := range u.Interfaces {
		if ifc.State == stateUntouched {
			continue
		}
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("network: revert: %w", err))
			break
		}
		removed, err := s.revert(ifc.Index, u.Qdisc)
		if err != nil {
			errs = append(errs, fmt.Errorf("network: revert %s in %s: %w", ifc.Name, ns, err))
			continue
		}
		f.log.Debug("network fault reverted", "interface", ifc.Name, "netns", ns.String(), "removed", removed)
	}
	return errors.Join(errs...)
}
