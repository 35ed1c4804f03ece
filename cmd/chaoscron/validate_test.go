package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestValidateOutputBounded: `chaoscron validate` of a config whose values are a megabyte
// each reports every one of them, in a few hundred bytes per line instead of echoing them.
func TestValidateOutputBounded(t *testing.T) {
	dir := t.TempDir()
	mb := func(c string) string { return strings.Repeat(c, 1_000_000) }
	cfg := writeConfig(t, dir, fmt.Sprintf(`
agent:
  timezone: %s
  listen: %s
experiments:
  - name: %s
    schedule: "%s"
    duration: 10s
    window: %s
    fault: {type: disk, path: /tmp, size: "%s"}
`, mb("Z"), mb("L"), mb("n"), mb("*"), mb("w"), mb("1")))
	out, errs, code := cli(t, dir, "validate", "-c", cfg)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr %.500s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out+errs), "\n")
	for _, want := range []string{"agent.timezone", "agent.listen", "experiments[0].name", "experiments[0].schedule", "experiments[0].window", "experiments[0].fault.size"} {
		if !strings.Contains(out+errs, want+": ") {
			t.Errorf("no problem reported at %s", want)
		}
	}
	if n := len(out) + len(errs); n > 4096 || len(lines) != 6 {
		t.Errorf("validate wrote %d bytes in %d lines for 6 problems, want at most 4096:\n%.3000s", n, len(lines), out+errs)
	}
	if !strings.Contains(errs, "is 1000000 characters long; at most 63") {
		t.Errorf("the over-long name is not reported as such:\n%.3000s", errs)
	}
}
