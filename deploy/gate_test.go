package deploy

import (
	"testing"

	"github.com/chaoscron/chaoscron/internal/testenv"
)

// Short names for the shared gate: a test that needs root or an outside tool skips on a
// laptop, saying why, and fails under CI=true.

func requireRoot(t testing.TB) { t.Helper(); testenv.Root(t) }

func requireTool(t testing.TB, name string) string { t.Helper(); return testenv.Tool(t, name) }
