package kube

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/chaoscron/chaoscron/internal/testenv"
)

// ForTest starts a cluster for t alone, in t.TempDir(), stopped when t ends. Without etcd or
// the means to build kube-apiserver it skips t, or under CI fails it (testenv.Require).
func ForTest(t testing.TB) *Cluster {
	t.Helper()
	c, err := Start(context.Background(), t.TempDir())
	require(t, err)
	t.Cleanup(c.Stop)
	return c
}

// shared is the one cluster of a test binary, started by the first Shared and stopped by
// RunShared after the last test.
var shared struct {
	sync.Mutex
	running bool // inside RunShared
	started bool
	c       *Cluster
	dir     string
	err     error
}

// RunShared runs the tests of a package that share one cluster (a start costs ~5 s and
// ~400 MB), and stops that cluster after them:
//
//	func TestMain(m *testing.M) { os.Exit(kube.RunShared(m)) }
//
// The cluster starts on the first Shared call, so a run of tests that need none (-run, -short)
// starts nothing.
func RunShared(m *testing.M) int {
	shared.Lock()
	shared.running = true
	shared.Unlock()
	code := m.Run()
	shared.Lock()
	defer shared.Unlock()
	if shared.c != nil {
		shared.c.Stop()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	return code
}

// Shared returns the package's shared cluster, starting it on first use (see RunShared).
// Tests that share it must keep to namespaces of their own (Namespace). Without etcd or the
// means to build kube-apiserver it skips t, or under CI fails it.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	shared.Lock()
	defer shared.Unlock()
	if !shared.running {
		t.Fatal("kube.Shared needs the package's TestMain to run the tests through kube.RunShared")
	}
	if !shared.started {
		shared.started = true
		shared.dir, shared.err = os.MkdirTemp("", "chaoscron-kube")
		if shared.err == nil {
			shared.c, shared.err = Start(context.Background(), shared.dir)
		}
	}
	require(t, shared.err)
	return shared.c
}

func require(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, ErrUnavailable) {
		testenv.Require(t, false, err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
}

var notName = regexp.MustCompile(`[^a-z0-9-]+`)

// Namespace creates a namespace of t's own in c, named after the test with a random suffix.
// It is not deleted after the test: without a controller manager a deleted namespace never
// goes away, and the cluster goes with the test binary anyway.
func (c *Cluster) Namespace(t testing.TB) string {
	t.Helper()
	name := strings.Trim(notName.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(name) > 50 {
		name = strings.Trim(name[:50], "-")
	}
	b := make([]byte, 3)
	rand.Read(b)
	name = fmt.Sprintf("%s-%s", name, hex.EncodeToString(b))
	if err := c.CreateNamespace(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	return name
}
