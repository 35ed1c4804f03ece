package deploy

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

var update = flag.Bool("update", false, "rewrite generated files (prometheus/rules.yaml) instead of comparing")

// scratch is a directory for what the tests build, removed after the run.
var scratch string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "chaoscron-deploy")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	scratch = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// The binary as the Dockerfile builds it, built once for the tests that need it.
var (
	imageOnce sync.Once
	imageBin  string
	imageErr  error
)

// shippedBinary builds chaoscron exactly as the Dockerfile does (see image_test.go) and
// returns its path.
func shippedBinary(t *testing.T) string {
	t.Helper()
	imageOnce.Do(func() {
		imageBin, imageErr = buildLikeDockerfile(filepath.Join(scratch, "image"))
	})
	if imageErr != nil {
		t.Fatal(imageErr)
	}
	return imageBin
}

// repoRoot is the module root, one up from this package.
func repoRoot(t testing.TB) string {
	t.Helper()
	abs, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return abs
}
