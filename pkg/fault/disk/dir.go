package disk

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// The fill's directory is resolved once, at Plan: the configured path with the symlinks an
// admin set up on purpose (/tmp → /private/tmp) followed as they are then. The undo records
// the resolved directory and its device and inode, and from then on every step works by
// descriptor: the directory is opened without following any symlink, checked against the
// recorded device and inode, and the fill is created, named and removed relative to that
// descriptor. A directory swapped for a symlink, or renamed away, is never mistaken for the
// one that holds the fill.

// openDir opens dir, an absolute clean path, as a directory without following a symlink in
// any of its components, and returns the descriptor and its stat.
func (f *Fault) openDir(dir string) (int, unix.Stat_t, error) {
	var st unix.Stat_t
	fd, err := -1, error(unix.ENOSYS)
	if !f.noOpenat2 {
		fd, err = unix.Openat2(unix.AT_FDCWD, dir, &unix.OpenHow{
			Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_NO_SYMLINKS,
		})
	}
	// ENOSYS: a kernel before 5.6; EPERM: a seccomp filter that does not know openat2.
	if errnoIn(err, unix.ENOSYS, unix.EPERM) {
		fd, err = openDirWalk(dir)
	}
	if err != nil {
		if errnoIn(err, unix.ELOOP) {
			return -1, st, fmt.Errorf("%s: a symlink is in the way: %w", dir, err)
		}
		return -1, st, fmt.Errorf("%s: %w", dir, err)
	}
	if err := unix.Fstat(fd, &st); err != nil {
		_ = unix.Close(fd)
		return -1, st, fmt.Errorf("fstat %s: %w", dir, err)
	}
	return fd, st, nil
}

// openDirWalk is openDir one component at a time with O_NOFOLLOW, for kernels without
// openat2. A symlink component fails with ENOTDIR (O_PATH opens the link itself, which is no
// directory) or ELOOP.
func openDirWalk(dir string) (int, error) {
	const flags = unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Open("/", unix.O_RDONLY|flags, 0)
	if err != nil {
		return -1, err
	}
	for rest := strings.TrimPrefix(dir, "/"); rest != ""; {
		var name string
		name, rest, _ = strings.Cut(rest, "/")
		mode := unix.O_PATH // search permission is enough on the way
		if rest == "" {
			mode = unix.O_RDONLY
		}
		next, err := unix.Openat(fd, name, mode|flags, 0)
		_ = unix.Close(fd)
		if err != nil {
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

// sameFile reports whether a and b are the same inode.
func sameFile(a, b *unix.Stat_t) bool { return a.Dev == b.Dev && a.Ino == b.Ino }

// devString prints a device number the way /proc/self/mountinfo does.
func devString(dev uint64) string {
	return fmt.Sprintf("%d:%d", unix.Major(dev), unix.Minor(dev))
}
