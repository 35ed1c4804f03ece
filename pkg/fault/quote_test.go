package fault

import (
	"strings"
	"testing"
	"time"
)

// TestErrorsCutEchoedValues: a parameter error quotes at most EchoMax bytes of the value
// and says how long it was, so a megabyte of a mistake is not a megabyte of output.
func TestErrorsCutEchoedValues(t *testing.T) {
	huge := strings.Repeat("x", 1_000_000)
	var p struct {
		Size     Size          `param:"size"`
		Load     Percent       `param:"load"`
		Hold     time.Duration `param:"hold"`
		Name     string        `param:"name"`
		Ignore   bool          `param:"ignore"`
		Interval time.Duration `param:"interval"`
	}
	err := Decode(Params{"size": huge, "load": huge, "hold": huge, "name": 7, "ignore": huge, "interval": 12}, &p)
	fes := FieldErrors(err)
	if len(fes) != 6 {
		t.Fatalf("got %d errors, want 6: %v", len(fes), err)
	}
	for _, fe := range fes {
		if len(fe.Msg) > 200 {
			t.Errorf("%s: message is %d bytes: %.300s", fe.Key, len(fe.Msg), fe.Msg)
		}
		if fe.Key != "name" && fe.Key != "interval" && !strings.Contains(fe.Msg, `"`+strings.Repeat("x", EchoMax)+`"…(1000000 bytes)`) {
			t.Errorf("%s: %q does not quote the value's start and length", fe.Key, fe.Msg)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"short", `"short"`},
		{strings.Repeat("a", EchoMax), `"` + strings.Repeat("a", EchoMax) + `"`},
		// Cut on a character boundary, never inside one: "é" is two bytes.
		{strings.Repeat("a", EchoMax-1) + "éé", `"` + strings.Repeat("a", EchoMax-1) + `"…(67 bytes)`},
	} {
		if got := Quote(tc.in); got != tc.want {
			t.Errorf("Quote(%.20q…) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
