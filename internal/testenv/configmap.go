package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// ConfigMap lays out a config file the way a Kubernetes ConfigMap volume does:
// Dir/chaoscron.yaml → ..data/chaoscron.yaml, ..data → ..<version>. Write puts a new
// version in a directory of its own and swaps the ..data symlink atomically, as the kubelet
// does: the file's own path never changes and is never written.
type ConfigMap struct {
	T   testing.TB
	Dir string
	n   int
}

// Path is the config file's path, the one the agent is given.
func (c *ConfigMap) Path() string { return filepath.Join(c.Dir, "chaoscron.yaml") }

// Write publishes yaml as the next version.
func (c *ConfigMap) Write(yaml string) {
	c.T.Helper()
	c.n++
	v := fmt.Sprintf("..v%d", c.n)
	tmp := filepath.Join(c.Dir, "..data_tmp")
	steps := []func() error{
		func() error { return os.MkdirAll(filepath.Join(c.Dir, v), 0o755) },
		func() error { return os.WriteFile(filepath.Join(c.Dir, v, "chaoscron.yaml"), []byte(yaml), 0o644) },
		func() error { return os.Symlink(v, tmp) },
		func() error { return os.Rename(tmp, filepath.Join(c.Dir, "..data")) },
	}
	if c.n == 1 {
		steps = append(steps, func() error { return os.Symlink(filepath.Join("..data", "chaoscron.yaml"), c.Path()) })
	}
	for _, step := range steps {
		if err := step(); err != nil {
			c.T.Fatal(err)
		}
	}
}
