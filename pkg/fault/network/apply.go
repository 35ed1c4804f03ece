package network

import (
	"errors"
	"fmt"

	tc "github.com/florianl/go-tc"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/chaoscron/chaoscron/pkg/fault/internal/netns"
)

// session is an open namespace with a socket for reading (plain rtnetlink) and one for
// changing (go-tc).
type session struct {
	ns *netns.NS
	rd *netlink.Conn
	tc *tc.Tc
}

func newSession(ns *netns.NS) (*session, error) {
	rd, err := dial(ns)
	if err != nil {
		return nil, err
	}
	t, err := dialTC(ns)
	if err != nil {
		rd.Close()
		return nil, err
	}
	return &session{ns: ns, rd: rd, tc: t}, nil
}

func (s *session) Close() error {
	return errors.Join(s.tc.Close(), s.rd.Close())
}

// inject sets up chaoscron's qdiscs on the interface, with leaf (netem or tbf) doing the
// fault. It returns the root found before, and applied = true once chaoscron's root is in
// place (from then on a failure leaves something the caller must roll back).
func (s *session) inject(name string, index int, cfg config, leaf tc.Attribute) (prev *qdiscRef, applied bool, err error) {
	ls, err := links(s.rd)
	if err != nil {
		return nil, false, err
	}
	l, ok := byIndex(ls, index)
	switch {
	case !ok:
		return nil, false, fmt.Errorf("interface %s (index %d) is gone", name, index)
	case l.Name != name:
		return nil, false, fmt.Errorf("interface index %d is now %q, not %q as planned", index, l.Name, name)
	}
	roots, err := rootQdiscs(s.rd)
	if err != nil {
		return nil, false, err
	}
	root := roots[index]
	if err := checkRoot(name, root); err != nil {
		return nil, false, err
	}
	// The kernel will not replace a non-default root without NLM_F_REPLACE, which is never
	// sent: EEXIST means somebody put one there since the check above.
	rootErr := func(kind string, err error) error {
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add %s %s: %w (one appeared while injecting): %w", kind, rootHandle, ErrForeignRoot, err)
		}
		return fmt.Errorf("add %s %s: %w", kind, rootHandle, err)
	}
	if cfg.rootKind() == leaf.Kind {
		// Nothing to sort: the fault's qdisc alone at the root (this needs no sch_prio).
		if err := s.tc.Qdisc().Add(&tc.Object{Msg: qdiscMsg(index, rootHandle, handleRoot), Attribute: leaf}); err != nil {
			return &root, false, rootErr(leaf.Kind, err)
		}
		return &root, true, nil
	}

	// Bands: 1 (index 0) plain, 2 (index 1) netem. Unclaimed packets go to the netem band
	// unless the fault is scoped.
	dflt := uint8(1)
	if cfg.scope.scoped() {
		dflt = 0
	}
	prio := &tc.Prio{Bands: 2}
	for i := range prio.PrioMap {
		prio.PrioMap[i] = dflt
	}
	if err := s.tc.Qdisc().Add(&tc.Object{
		Msg:       qdiscMsg(index, rootHandle, handleRoot),
		Attribute: tc.Attribute{Kind: "prio", Prio: prio},
	}); err != nil {
		return &root, false, rootErr("prio", err)
	}
	// The plain band gets a pfifo of its own: prio's default child takes its limit from the
	// device's txqueuelen, which is 0 on some virtual devices and would drop everything.
	if err := s.tc.Qdisc().Add(&tc.Object{
		Msg:       qdiscMsg(index, passHandle, passBand),
		Attribute: tc.Attribute{Kind: "pfifo", Pfifo: &tc.FifoOpt{Limit: max(cfg.netem.Limit, defaultLimit)}},
	}); err != nil {
		return &root, true, fmt.Errorf("add pfifo %s: %w", passHandle, err)
	}
	fs := filters(cfg.scope)
	// Exclusions first, so the agent's own traffic is never steered into the fault, not even
	// while the match filters are being added.
	for _, f := range fs {
		if f.Band == passBand {
			if err := s.addFilter(index, f); err != nil {
				return &root, true, err
			}
		}
	}
	if err := s.tc.Qdisc().Add(&tc.Object{Msg: qdiscMsg(index, netemHandle, netemBand), Attribute: leaf}); err != nil {
		return &root, true, fmt.Errorf("add %s %s: %w", leaf.Kind, netemHandle, err)
	}
	for _, f := range fs {
		if f.Band == netemBand {
			if err := s.addFilter(index, f); err != nil {
				return &root, true, err
			}
		}
	}
	return &root, true, nil
}

func (s *session) addFilter(index int, f u32Filter) error {
	obj, err := f.object(index)
	if err == nil {
		err = s.tc.Filter().Add(obj)
	}
	if err != nil {
		return fmt.Errorf("add u32 filter (prio %d, to %s): %w", f.Prio, f.Band, err)
	}
	return nil
}

func qdiscMsg(index int, handle, parent Handle) tc.Msg {
	return tc.Msg{Family: unix.AF_UNSPEC, Ifindex: uint32(index), Handle: uint32(handle), Parent: uint32(parent)}
}

// revert deletes root q from the interface with the planned index, and only that one: inject
// applies nothing anywhere else, and interface indexes are not reused in a namespace, so a q
// on another interface of the same name (the interface was deleted and created again) belongs
// to another run or is a leftover for the sweep — never this run's to remove. removed says
// whether anything was deleted.
func (s *session) revert(index int, q qdiscRef) (removed bool, err error) {
	if err := q.owned(); err != nil {
		return false, err
	}
	ls, err := links(s.rd)
	if err != nil {
		return false, err
	}
	if _, ok := byIndex(ls, index); !ok {
		return false, nil // the interface is gone, and its qdiscs with it
	}
	return s.deleteRoot(index, q)
}

// deleteRoot deletes root q on ifindex; a q that is not there is not an error.
func (s *session) deleteRoot(index int, q qdiscRef) (bool, error) {
	obj := &tc.Object{Msg: qdiscMsg(index, q.Handle, handleRoot), Attribute: tc.Attribute{Kind: q.Kind}}
	switch q.Kind { // go-tc wants a non-nil options struct of the kind, even to delete
	case "prio":
		obj.Prio = &tc.Prio{}
	case "netem":
		obj.Netem = &tc.Netem{}
	case "tbf":
		obj.Tbf = &tc.Tbf{Parms: &tc.TbfQopt{}} // go-tc refuses a tbf without Parms
	}
	err := s.tc.Qdisc().Delete(obj)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.ENODEV), errors.Is(err, unix.ENOENT):
		return false, nil // no such device, or no qdisc at the root: already gone
	case errors.Is(err, unix.EINVAL):
		// "Invalid handle" or "Invalid qdisc name": the root is not q, so q is gone (a root
		// with q's handle but another kind is not what this run created, and stays). EINVAL
		// could also mean a malformed request: only if q is really not there is it success.
		roots, rerr := rootQdiscs(s.rd)
		if rerr != nil {
			return false, fmt.Errorf("delete %s: %w (and reading the root: %w)", q, err, rerr)
		}
		if roots[index] == q {
			return false, fmt.Errorf("delete %s: %w", q, err)
		}
		return false, nil
	}
	return false, fmt.Errorf("delete %s: %w", q, err)
}
