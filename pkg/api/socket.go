package api

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
)

// SocketPath is where the agent serves its API for a journal at journalPath: right next to
// it, so that whoever can find the journal can find the agent holding it.
func SocketPath(journalPath string) string { return journalPath + ".sock" }

// maxSocketPath is the size of sun_path on Linux, including the terminating NUL.
const maxSocketPath = 108

// ListenSocket listens on a unix socket at path, mode 0600. A socket file already there is a
// leftover of an agent that died without removing it (the caller holds the journal lock,
// so no live agent owns it) and is replaced; anything else at path is an error, never
// removed. Closing the listener removes the socket file.
//
// The socket is bound inside a fresh 0700 directory, set to 0600, and only then renamed into
// place: binding at path directly would expose it, for a moment, with the umask's mode.
func ListenSocket(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("listen %s: exists and is not a socket; not replacing it", path)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(path), ".chaoscron-sock-")
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	defer os.RemoveAll(tmp)
	bound := filepath.Join(tmp, "s")
	if len(bound) >= maxSocketPath && len(path) < maxSocketPath {
		// The detour does not fit in a socket address where the path itself does: bind in
		// place. The journal's directory is 0700 when chaoscron created it, which covers
		// the moment before the chmod.
		bound = path
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: bound, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	// The path the listener would unlink on Close is the temporary one; unlink ours instead.
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(bound, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	if bound == path {
		return &socketListener{UnixListener: ln, path: path}, nil
	}
	if err := os.Rename(bound, path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	return &socketListener{UnixListener: ln, path: path}, nil
}

type socketListener struct {
	*net.UnixListener
	path string
}

// Close stops listening and removes the socket file.
func (l *socketListener) Close() error {
	err := l.UnixListener.Close()
	if rerr := os.Remove(l.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
		err = rerr
	}
	return err
}
