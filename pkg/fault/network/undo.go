package network

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Handles. Every qdisc chaoscron creates carries a major from its own block, so that what it
// created can be told from anything else on the interface, by any later agent process:
//
//	c4a0:   root prio, 2 bands           the ownership mark: Revert and Sweep look for it
//	c4a1:   netem or tbf, on band c4a0:2
//	c4a2:   pfifo, on band c4a0:1        traffic the fault leaves alone
//
// A bandwidth fault with no packets to sort (no ports, cidrs or exclude_ports) is a tbf alone
// at the root, c4a0:, with nothing under it.
//
// Only the root is ever deleted: its children and its u32 filters go with it. The block is
// fixed (not per run) so a sweep can find leftovers without any record of them.
const (
	rootMajor  = 0xC4A0
	netemMajor = 0xC4A1
	passMajor  = 0xC4A2

	rootHandle  Handle = rootMajor << 16
	netemHandle Handle = netemMajor << 16
	passHandle  Handle = passMajor << 16
	passBand    Handle = rootHandle | 1
	netemBand   Handle = rootHandle | 2

	handleRoot Handle = 0xFFFFFFFF // TC_H_ROOT
)

// rootKinds are the kinds chaoscron has ever put at the root under rootMajor. Revert and
// Sweep delete a root only if both its handle and its kind are chaoscron's; the kernel
// itself refuses a delete whose handle or kind do not match. The handle is the only mark a
// qdisc can carry, so another tool's tbf that picked c4a0: would be taken for chaoscron's.
var rootKinds = []string{"prio", "netem", "tbf"}

// undoVersion is bumped when the undo's meaning changes; Revert refuses versions it does not
// know rather than guess. A tbf root and the tbf field left it at 1: what an undo of version 1
// says still means the same, and an older agent refuses kind tbf rather than delete it.
const undoVersion = 1

// States of an interface in the undo.
const (
	// statePlanned: Inject may or may not have reached it (the plan, as written to the
	// journal before anything changed). Revert removes chaoscron's root if it is there.
	statePlanned = "planned"
	// stateApplied: Inject put chaoscron's qdiscs there.
	stateApplied = "applied"
	// stateUntouched: Inject did not change it, or rolled its change back. Revert skips it,
	// so that a failed Inject (chaoscron's root already there from another run) followed by
	// a Revert never removes the other run's fault.
	stateUntouched = "untouched"
)

// undo is the JSON written to the journal, e.g.
//
//	{"version":1,"run":"42","netns":"/proc/123/ns/net","netns_inode":4026532281,
//	 "qdisc":{"kind":"prio","handle":"c4a0:"},"netem":"delay 100ms loss 30%",
//	 "interfaces":[{"name":"eth0","index":2,"state":"applied",
//	                "previous_root":{"kind":"noqueue","handle":"0:"}}]}
//
// and for a bandwidth fault "qdisc":{"kind":"tbf","handle":"c4a0:"} (prio when scoped) with
// "tbf":"rate 1Mbit burst 16KiB limit 22634B" in place of "netem".
//
// NetnsInode identifies the namespace even when its path no longer leads to it (a
// /proc/<pid> path whose pid was reused): Revert then looks for the namespace by inode.
type undo struct {
	Version    int         `json:"version"`
	Run        string      `json:"run"`
	Netns      string      `json:"netns,omitempty"` // "": the agent's own
	NetnsInode uint64      `json:"netns_inode"`
	Qdisc      qdiscRef    `json:"qdisc"`
	Netem      string      `json:"netem,omitempty"` // informational: what was injected
	Tbf        string      `json:"tbf,omitempty"`   // informational, for a bandwidth fault
	Interfaces []ifaceUndo `json:"interfaces"`
}

type ifaceUndo struct {
	Name  string `json:"name"`
	Index int    `json:"index"`
	State string `json:"state"`
	// Previous is the root qdisc found before injecting: always a kernel default (handle
	// 0:), since a non-default root is refused. Deleting chaoscron's root brings the kernel
	// default back, so nothing needs restoring; it is kept for the record.
	Previous *qdiscRef `json:"previous_root,omitempty"`
}

type qdiscRef struct {
	Kind   string `json:"kind"`
	Handle Handle `json:"handle"`
}

func (q qdiscRef) String() string { return q.Kind + " " + q.Handle.String() }

func decodeUndo(b []byte) (undo, error) {
	var u undo
	if err := json.Unmarshal(b, &u); err != nil {
		return undo{}, fmt.Errorf("network: decode undo: %w", err)
	}
	if u.Version != undoVersion {
		return undo{}, fmt.Errorf("network: undo version %d is not %d: written by another chaoscron version", u.Version, undoVersion)
	}
	if err := u.Qdisc.owned(); err != nil {
		return undo{}, fmt.Errorf("network: undo refused: %w", err)
	}
	for _, i := range u.Interfaces {
		if checkIfName(i.Name) != nil || i.Index <= 0 {
			return undo{}, fmt.Errorf("network: undo names interface %q index %d: not valid", i.Name, i.Index)
		}
	}
	return u, nil
}

// owned reports an error unless q is a root chaoscron creates. It keeps a hand-edited or
// corrupted undo from making Revert delete somebody else's qdisc.
func (q qdiscRef) owned() error {
	if q.Handle != rootHandle || !isRootKind(q.Kind) {
		return fmt.Errorf("qdisc %s is not chaoscron's (%s with kind %s)", q, rootHandle, strings.Join(rootKinds, " or "))
	}
	return nil
}

func isRootKind(k string) bool {
	for _, r := range rootKinds {
		if k == r {
			return true
		}
	}
	return false
}

// Handle is a tc handle, written as tc writes it: "c4a0:", "c4a0:2", "root".
type Handle uint32

func (h Handle) major() uint32 { return uint32(h) >> 16 }

func (h Handle) String() string {
	switch {
	case h == handleRoot:
		return "root"
	case h&0xFFFF == 0:
		return fmt.Sprintf("%x:", h.major())
	}
	return fmt.Sprintf("%x:%x", h.major(), uint32(h)&0xFFFF)
}

// MarshalText implements encoding.TextMarshaler.
func (h Handle) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (h *Handle) UnmarshalText(b []byte) error {
	s := string(b)
	if s == "root" {
		*h = handleRoot
		return nil
	}
	maj, min, ok := strings.Cut(s, ":")
	if !ok {
		return fmt.Errorf("handle %q: want major:minor in hex, as in c4a0:2", s)
	}
	ma, err := strconv.ParseUint(maj, 16, 16)
	if err != nil {
		return fmt.Errorf("handle %q: bad major", s)
	}
	var mi uint64
	if min != "" {
		if mi, err = strconv.ParseUint(min, 16, 16); err != nil {
			return fmt.Errorf("handle %q: bad minor", s)
		}
	}
	*h = Handle(ma<<16 | mi)
	return nil
}
