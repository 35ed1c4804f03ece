package config

import (
	"strings"
	"testing"
)

// TestClipMsg: quoted values are cut wherever a message comes from, a message is bounded
// even when it echoes a value unquoted, and what is short stays as it was.
func TestClipMsg(t *testing.T) {
	long := strings.Repeat("y", 5000)
	for _, tc := range []struct{ name, in, want string }{
		{"short", `unknown window "nightly" (defined: a, b)`, `unknown window "nightly" (defined: a, b)`},
		{"quoted value", `invalid schedule "` + long + `": found 1 fields`,
			`invalid schedule "` + long[:64] + `"…(5000 bytes): found 1 fields`},
		{"escaped quotes inside", `got "` + strings.Repeat(`\"`, 100) + `" here`,
			`got "` + strings.Repeat(`\"`, 64) + `"…(100 bytes) here`},
		{"unterminated quote, unquoted echo", `bad "` + long,
			`bad "` + long[:maxMsg-5] + "…(5005 bytes)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := clipMsg(tc.in); got != tc.want {
				t.Errorf("clipMsg:\n got %.200q\nwant %.200q", got, tc.want)
			}
		})
	}
	// Many quotes that start nothing: still one pass, and bounded.
	if got := clipMsg(strings.Repeat(`a"`, 500_000)); len(got) > maxMsg+20 {
		t.Errorf("clipMsg left %d bytes", len(got))
	}
}
