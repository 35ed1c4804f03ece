package api_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chaoscron/chaoscron/pkg/api"
)

func TestListenSocket(t *testing.T) {
	dir := t.TempDir()
	path := api.SocketPath(filepath.Join(dir, "j.db"))

	// A socket file left by an agent that was killed: replaced.
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()

	ln, err := api.ListenSocket(path)
	if err != nil {
		t.Fatalf("over a stale socket: %v", err)
	}
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v (%v), want a socket with 0600", fi.Mode(), err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("left behind in the journal's directory: %v", ents)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.Close()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Fatalf("socket file still there after Close: %v", err)
	}

	// Anything but a socket at that path is someone else's: never removed.
	if err := os.WriteFile(path, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := api.ListenSocket(path); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("over a regular file: %v, want a refusal", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "mine" {
		t.Fatal("a regular file at the socket path was clobbered")
	}
}
