package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"

	"github.com/chaoscron/chaoscron/pkg/fault"
	"github.com/chaoscron/chaoscron/pkg/fault/internal/netns"
)

// Sweep removes chaoscron's root qdisc (handle c4a0:, a kind in rootKinds) from every
// interface of the fault's namespace that no undo in keep owns, and describes each removal
// ("removed prio c4a0: on eth0 in /proc/123/ns/net"). An undo owns an interface when it names
// the same namespace (by inode) and interface index, and does not mark it untouched.
//
// keep may hold undos of other fault types: whatever does not decode as a network undo owns
// nothing. A network undo too damaged to decode cannot be reverted either, so sweeping what it
// described is the right outcome.
func (f *Fault) Sweep(ctx context.Context, keep []fault.Undo) ([]string, error) {
	ns, err := netns.Open(f.proc, f.cfg.netns, 0)
	if err != nil {
		if errors.Is(err, netns.ErrGone) || errors.Is(err, fs.ErrNotExist) {
			return nil, nil // no namespace, no qdiscs
		}
		return nil, fmt.Errorf("network: sweep: %w", err)
	}
	defer ns.Close()

	owned := map[int]bool{}
	for _, raw := range keep {
		var u undo
		if json.Unmarshal(raw, &u) != nil || u.NetnsInode != ns.Inode {
			continue
		}
		for _, i := range u.Interfaces {
			if i.State != stateUntouched {
				owned[i.Index] = true
			}
		}
	}

	s, err := newSession(ns)
	if err != nil {
		return nil, fmt.Errorf("network: sweep: %w", err)
	}
	defer s.Close()
	ls, err := links(s.rd)
	if err != nil {
		return nil, fmt.Errorf("network: sweep in %s: %w", ns, err)
	}
	roots, err := rootQdiscs(s.rd)
	if err != nil {
		return nil, fmt.Errorf("network: sweep in %s: %w", ns, err)
	}
	var removed []string
	var errs []error
	for _, l := range ls {
		q, ok := roots[l.Index]
		if !ok || q.owned() != nil || owned[l.Index] {
			continue
		}
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("network: sweep: %w", err))
			break
		}
		did, err := s.deleteRoot(l.Index, q)
		if err != nil {
			errs = append(errs, fmt.Errorf("network: sweep %s in %s: %w", l.Name, ns, err))
			continue
		}
		if did {
			what := fmt.Sprintf("removed %s on %s in %s", q, l.Name, ns)
			f.log.Warn("swept chaoscron qdisc no run owns", "qdisc", q.String(), "interface", l.Name, "netns", ns.String())
			removed = append(removed, what)
		}
	}
	return removed, errors.Join(errs...)
}
