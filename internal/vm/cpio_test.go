package vm

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chaoscron/chaoscron/internal/testenv"
)

// The archive as cpio(1) reads it: busybox's cpio lists and extracts it.
func TestArchiveReadByCpio(t *testing.T) {
	bb := testenv.Tool(t, "busybox")
	a := NewArchive()
	a.File("etc/motd", 0o644, []byte("hello\n"))
	a.File("a/b/c/odd", 0o600, []byte("12345")) // length not a multiple of 4
	a.Symlink("bin/sh", "/bin/busybox")
	a.CharDev("dev/console", 0o600, 5, 1)
	gz, err := a.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw)%4 != 0 {
		t.Errorf("archive length %d is not a multiple of 4", len(raw))
	}
	list := exec.Command(bb, "cpio", "-t")
	list.Stdin = bytes.NewReader(raw)
	out, err := list.Output() // the block count goes to stderr
	if err != nil {
		t.Fatalf("cpio -t: %v\n%s", err, out)
	}
	want := "a\na/b\na/b/c\na/b/c/odd\nbin\nbin/sh\ndev\ndev/console\netc\netc/motd\n"
	if string(out) != want {
		t.Errorf("cpio -t:\n%s\nwant\n%s", out, want)
	}
	dir := t.TempDir()
	x := exec.Command(bb, "cpio", "-i", "-d")
	x.Dir, x.Stdin = dir, bytes.NewReader(raw)
	if out, err := x.CombinedOutput(); err != nil && !strings.Contains(string(out), "dev/console") {
		t.Fatalf("cpio -i: %v\n%s", err, out)
	}
	for p, w := range map[string]string{"etc/motd": "hello\n", "a/b/c/odd": "12345"} {
		if b, err := os.ReadFile(filepath.Join(dir, p)); err != nil || string(b) != w {
			t.Errorf("%s: %q, %v", p, b, err)
		}
	}
	if l, err := os.Readlink(filepath.Join(dir, "bin/sh")); err != nil || l != "/bin/busybox" {
		t.Errorf("bin/sh → %q, %v", l, err)
	}
}

func TestCompareVersions(t *testing.T) {
	if compareVersions("vmlinuz-6.1.0-9-amd64", "vmlinuz-6.1.0-10-amd64") >= 0 {
		t.Error("6.1.0-9 sorts after 6.1.0-10")
	}
	if compareVersions("vmlinuz-6.10.0-1", "vmlinuz-6.9.0-1") <= 0 {
		t.Error("6.10 sorts before 6.9")
	}
}
