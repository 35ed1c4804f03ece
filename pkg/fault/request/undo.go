package request

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/chaoscron/chaoscron/pkg/fault/request/nft"
)

// undoVersion is bumped when the undo's meaning changes; Revert refuses versions it does not
// know rather than guess.
const undoVersion = 1

// undo is the JSON written to the journal, e.g.
//
//	{"version":1,"run":"a1b2-7","netns":"/proc/123/ns/net","netns_inode":4026532281,
//	 "table":"chaoscron_http_a1b2_7","port":8080,"proxy_port":41234}
//
// The table name is decided by Plan, from the run's key, before anything exists: an agent
// that dies at any point after the intent is written leaves nothing that Revert, from this
// undo alone, cannot find. ProxyPort is set by Inject, for the record.
type undo struct {
	Version    int    `json:"version"`
	Run        string `json:"run"`
	Netns      string `json:"netns,omitempty"` // "": the agent's own
	NetnsInode uint64 `json:"netns_inode"`
	Table      string `json:"table"`
	Port       uint16 `json:"port"`
	ProxyPort  uint16 `json:"proxy_port,omitempty"`
}

func decodeUndo(b []byte) (undo, error) {
	var u undo
	if err := json.Unmarshal(b, &u); err != nil {
		return undo{}, fmt.Errorf("http: decode undo: %w", err)
	}
	if u.Version != undoVersion {
		return undo{}, fmt.Errorf("http: undo version %d is not %d: written by another chaoscron version", u.Version, undoVersion)
	}
	// A hand-edited or damaged undo must not make Revert delete somebody else's table; the
	// mark is checked as well before anything is deleted.
	if !strings.HasPrefix(u.Table, nft.Prefix) || u.Port == 0 {
		return undo{}, fmt.Errorf("http: undo names table %q, port %d: not chaoscron's", u.Table, u.Port)
	}
	return u, nil
}
