// Package testenv gates tests that need root, namespaces, a VM or an outside tool.
// On a laptop such a test skips with the reason; under CI (CI=true) it fails, because a
// required test that silently skips is a test that tests nothing.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// CI reports whether the tests run under CI, where nothing may skip.
func CI() bool { return os.Getenv("CI") == "true" }

// Require skips (or, under CI, fails) t unless ok.
func Require(t testing.TB, ok bool, why string) {
	t.Helper()
	if ok {
		return
	}
	if CI() {
		t.Fatalf("required under CI: %s", why)
	}
	t.Skipf("skipped: %s (required under CI=true)", why)
}

// Root requires uid 0.
func Root(t testing.TB) {
	t.Helper()
	Require(t, os.Geteuid() == 0, "needs root")
}

// Tool requires an executable on PATH and returns its path.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	Require(t, err == nil, name+" not found on PATH")
	return p
}

// Start starts cmd and makes sure it is killed and reaped when the test ends, pass or fail:
// a test must not leave an agent (or its faults) running behind it.
func Start(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
}
