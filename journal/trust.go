package journal

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// ErrUntrusted is returned by a writable Open of a journal that another user could have
// written: its records name what recovery reverts and its halt switch is obeyed, so a
// journal planted by someone else would steer an agent that usually runs as root.
var ErrUntrusted = errors.New("refusing a journal another user can write")

// trusted checks, as sshd's StrictModes does for authorized_keys, that nobody but this
// user (the effective uid) or root can have written the journal at path: the file, if it
// exists, and its directory must be owned by one of them and not writable by group or
// others (group write is fine where the group is the owner's private group: privateGroup). A directory with the sticky bit (like /tmp) may be writable by all: there nobody
// can rename or remove a file they do not own, so ours cannot be swapped, and a file they
// planted under our name before we created it fails the file's own owner check. A
// symlinked journal is checked where it really lives too.
//
// Open calls it before create, so nothing is created in a directory others control, and
// again after, on the very file it is about to read: in a sticky directory another user
// could have linked a file of theirs to the name in between. Read-only opens are not
// checked: reading a journal obeys nothing in it and changes nothing, and inspecting a
// suspicious file is just what `journal list --journal FILE` is for.
func trusted(path string) error {
	if err := trustedDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("open journal %s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // created next, by us
	}
	if err != nil {
		return fmt.Errorf("open journal %s: %w", path, err)
	}
	if real, err := filepath.EvalSymlinks(path); err == nil && filepath.Dir(real) != filepath.Dir(path) {
		if err := trustedDir(filepath.Dir(real)); err != nil {
			return fmt.Errorf("open journal %s (%s): %w", path, real, err)
		}
	}
	if why := untrusted(fi); why != "" {
		return fmt.Errorf("open journal %s: %w: the file %s", path, ErrUntrusted, why)
	}
	return nil
}

// trustedDir checks the journal's directory; one that does not exist yet is created by
// create, 0700 and ours.
func trustedDir(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if why := untrusted(fi); why != "" {
		return fmt.Errorf("%w: its directory %s %s", ErrUntrusted, dir, why)
	}
	return nil
}

// untrusted says why another user could change fi, or "" if nobody but us or root can.
func untrusted(fi fs.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "" // not a local file system we can judge; nothing to go on
	}
	euid := os.Geteuid()
	if int(st.Uid) != euid && st.Uid != 0 {
		return fmt.Sprintf("is owned by uid %d, not by this user (uid %d) or root: chown it, or use another journal.path", st.Uid, euid)
	}
	mode := fi.Mode()
	if mode.Perm()&0o022 == 0o020 && systemPrivateGroup(st.Uid, st.Gid) {
		return "" // group-writable, but the group is the owner's alone (umask 002)
	}
	if mode.Perm()&0o022 != 0 && !(fi.IsDir() && mode&fs.ModeSticky != 0) {
		return fmt.Sprintf("is writable by group or others (mode %04o): chmod go-w it, or use another journal.path", mode.Perm())
	}
	return ""
}
