package network

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/chaoscron/chaoscron/pkg/fault/internal/netns"
)

func TestHandleText(t *testing.T) {
	for _, tc := range []struct {
		h    Handle
		text string
	}{{rootHandle, "c4a0:"}, {netemBand, "c4a0:2"}, {0, "0:"}, {handleRoot, "root"}, {0x00010000, "1:"}} {
		b, _ := tc.h.MarshalText()
		if string(b) != tc.text {
			t.Errorf("%#x: %q, want %q", uint32(tc.h), b, tc.text)
		}
		var back Handle
		if err := back.UnmarshalText(b); err != nil || back != tc.h {
			t.Errorf("%q parses to %#x, %v", b, uint32(back), err)
		}
	}
	for _, bad := range []string{"", "c4a0", "zz:", "1:zz", "10000:"} {
		var h Handle
		if err := h.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("%q parsed as %s", bad, h)
		}
	}
}

const sampleUndo = `{"version":1,"run":"42","netns":"/proc/123/ns/net","netns_inode":4026532281,` +
	`"qdisc":{"kind":"prio","handle":"c4a0:"},"netem":"delay 100ms limit 1000",` +
	`"interfaces":[{"name":"eth0","index":2,"state":"applied","previous_root":{"kind":"noqueue","handle":"0:"}}]}`

func TestUndoFormat(t *testing.T) {
	u, err := decodeUndo([]byte(sampleUndo))
	if err != nil {
		t.Fatal(err)
	}
	if u.Interfaces[0].Previous.Kind != "noqueue" || u.Qdisc.Handle != rootHandle || u.NetnsInode != 4026532281 {
		t.Errorf("decoded %+v", u)
	}
	b, _ := json.Marshal(u)
	if string(b) != sampleUndo {
		t.Errorf("round trip\n got %s\nwant %s", b, sampleUndo)
	}
}

func TestUndoRefused(t *testing.T) {
	for name, edit := range map[string][2]string{
		"foreign handle":  {`"handle":"c4a0:"},"netem"`, `"handle":"1:"},"netem"`},
		"foreign kind":    {`"kind":"prio"`, `"kind":"htb"`},
		"version":         {`"version":1`, `"version":2`},
		"no index":        {`"index":2`, `"index":0`},
		"bad name":        {`"name":"eth0"`, `"name":"../x"`},
		"not json":        {`{"version"`, `["version"`},
		"default handle":  {`"handle":"c4a0:"},"netem"`, `"handle":"0:"},"netem"`},
		"root as handle?": {`"handle":"c4a0:"},"netem"`, `"handle":"root"},"netem"`},
	} {
		s := strings.Replace(sampleUndo, edit[0], edit[1], 1)
		if s == sampleUndo {
			t.Fatalf("%s: edit did not apply", name)
		}
		if _, err := decodeUndo([]byte(s)); err == nil {
			t.Errorf("%s: accepted", name)
		}
		f := mustNew(t, map[string]any{"delay": "1ms"}, faultEnv())
		if err := f.Revert(t.Context(), []byte(s)); err == nil {
			t.Errorf("%s: Revert accepted it", name)
		}
	}
}

// A namespace that is gone: Inject touches nothing and says so; Revert has nothing to do.
func TestNamespaceGone(t *testing.T) {
	f := mustNew(t, map[string]any{"delay": "1ms", "netns": "/run/netns/chaoscron-gone"}, faultEnv())
	plan := strings.Replace(sampleUndo, `"netns":"/proc/123/ns/net","netns_inode":4026532281`,
		`"netns":"/run/netns/chaoscron-gone","netns_inode":1`, 1)
	plan = strings.Replace(plan, `"state":"applied"`, `"state":"planned"`, 1)
	got, err := f.Inject(t.Context(), []byte(plan))
	if !errors.Is(err, netns.ErrGone) {
		t.Errorf("Inject: %v, want netns.ErrGone", err)
	}
	if s := states(t, got); !slices.Equal(s, []string{"eth0=untouched"}) {
		t.Errorf("Inject returned %v", s)
	}
	if err := f.Revert(t.Context(), []byte(plan)); err != nil {
		t.Errorf("Revert: %v", err)
	}
	if removed, err := f.Sweep(t.Context(), nil); err != nil || len(removed) > 0 {
		t.Errorf("Sweep: %v %v", removed, err)
	}
}
