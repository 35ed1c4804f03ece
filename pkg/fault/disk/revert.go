package disk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

// Revert removes the fill file named by undo, which may come from Plan (Inject never returned:
// the agent crashed, or Inject failed) or from Inject, in this process or another. A file that
// is already gone is success; so Revert is idempotent. It returns nil only once the fill is
// proved gone: a fill that may still exist is an error wrapping ErrLeftBehind.
//
// In the process that injected it, Revert works on the descriptors Inject kept: it removes
// the name if it still leads to the fill, wherever the directory has been moved, and then
// requires the fill's link count to be 0 (a hard link elsewhere keeps it, and is reported).
//
// From the undo alone (start-up recovery), it opens the recorded directory without following
// symlinks and requires its device and inode to be the recorded ones; a directory that is
// gone, renamed, or swapped for a symlink or another directory is refused with ErrLeftBehind,
// saying where the fill was. Undos of earlier versions, without dir_ino, are handled as those
// versions did: the directory by name, and a missing one counts as gone.
//
// In both cases it removes the file only if it can prove the file is the one chaoscron made
// for this run:
//   - the undo names <dir>/.chaoscron-fill-<run> and nothing else;
//   - the name is a regular file, not a symlink, directory or device;
//   - where the filesystem supports user xattrs, the file carries user.chaoscron.run=<run>
//     (a file without it, or with another run's, is not ours, whatever its name);
//   - where it does not, the exact name is the proof, together with the device of the
//     directory and, once Inject has returned, the inode.
//
// Anything else at that name is left alone and reported with ErrNotOurs. Between the checks
// and unlink(2) the name is looked up once more and must still lead to the same inode; only a
// writer of the directory racing that last microsecond could slip another file under the name.
func (f *Fault) Revert(ctx context.Context, raw fault.Undo) error {
	if len(raw) == 0 {
		return nil // Inject never produced anything
	}
	var u undo
	if err := json.Unmarshal(raw, &u); err != nil {
		return fmt.Errorf("disk: decode undo: %w", err)
	}
	if err := u.check(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("disk: revert: %w", err)
	}
	var err error
	if h := f.take(u.Run); h != nil {
		err = f.removeHeld(h, &u)
	} else {
		err = f.remove(&u)
	}
	if err == nil {
		f.log.Debug("disk fill removed", "run", u.Run, "file", u.File)
	}
	return err
}

// openRecorded opens the directory of u's fill as Revert from the undo alone may use it;
// gone reports that it is missing in a way that proves the fill gone too (undos of earlier
// versions only).
func (f *Fault) openRecorded(u *undo) (dfd int, gone bool, err error) {
	dir := filepath.Dir(u.File)
	if u.DirIno == 0 {
		dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) {
			return -1, true, nil
		}
		if err != nil {
			return -1, false, fmt.Errorf("disk: open %s: %w", dir, err)
		}
		return dfd, false, nil
	}
	leftBehind := func(why string) error {
		return fmt.Errorf("disk: %s %s; %w (run %s, %s, inode %d in directory inode %d on device %s)",
			dir, why, ErrLeftBehind, u.Run, fault.Size(u.Bytes), u.Ino, u.DirIno, devString(u.Dev))
	}
	dfd, st, err := f.openDir(dir)
	if errnoIn(err, unix.ENOENT, unix.ENOTDIR, unix.ELOOP) {
		return -1, false, leftBehind(fmt.Sprintf("is not the fill's directory any more (%v)", errors.Unwrap(err)))
	}
	if err != nil {
		return -1, false, fmt.Errorf("disk: %w", err)
	}
	if st.Dev != u.Dev || st.Ino != u.DirIno {
		_ = unix.Close(dfd)
		return -1, false, leftBehind(fmt.Sprintf("is another directory now (inode %d on device %s)", st.Ino, devString(st.Dev)))
	}
	return dfd, false, nil
}

func (f *Fault) remove(u *undo) error {
	base := fillName(u)
	dfd, gone, err := f.openRecorded(u)
	if gone || err != nil {
		return err
	}
	defer unix.Close(dfd)

	// Look before opening: opening a device or a FIFO can have effects of its own.
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("disk: stat %s: %w", u.File, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("disk: %s is not a regular file: %w", u.File, ErrNotOurs)
	}
	fd, err := unix.Openat(dfd, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("disk: open %s: %w", u.File, err)
	}
	defer unix.Close(fd)
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("disk: fstat %s: %w", u.File, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("disk: %s is not a regular file: %w", u.File, ErrNotOurs)
	}
	if err := f.owned(fd, &st, u); err != nil {
		return err
	}

	var again unix.Stat_t
	if err := unix.Fstatat(dfd, base, &again, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return proveGone(fd, u)
		}
		return fmt.Errorf("disk: stat %s: %w", u.File, err)
	}
	if !sameFile(&again, &st) {
		return fmt.Errorf("disk: %s was replaced while being checked: %w", u.File, ErrNotOurs)
	}
	if err := unix.Unlinkat(dfd, base, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("disk: remove %s: %w", u.File, err)
	}
	// Make the removal durable: after a power cut, a name that comes back would be a fill the
	// journal says is gone.
	if err := unix.Fsync(dfd); err != nil {
		return fmt.Errorf("disk: fsync %s: %w", filepath.Dir(u.File), err)
	}
	return proveGone(fd, u)
}

// owned returns nil if the regular file open as fd (with stat st) is u's fill file, else an
// error wrapping ErrNotOurs that says why not.
func (f *Fault) owned(fd int, st *unix.Stat_t, u *undo) error {
	buf := make([]byte, 256) // run ids are at most 128 bytes
	n, err := unix.Fgetxattr(fd, f.attr, buf)
	switch {
	case err == nil:
		if got := string(buf[:n]); got != u.Run {
			return fmt.Errorf("disk: %s belongs to run %q, not %q: %w", u.File, got, u.Run, ErrNotOurs)
		}
		return nil
	case errors.Is(err, unix.ENODATA):
		// Where there is no O_TMPFILE, Inject creates the file under its name and tags it
		// next; an agent killed in between leaves it empty and untagged, recorded only by
		// the plan (no inode yet). The name is this run's own and the file holds nothing,
		// so it is ours to remove: refusing would keep the run's cleanup failed for good.
		if u.Ino == 0 && st.Dev == u.Dev && st.Size == 0 && st.Blocks == 0 {
			return nil
		}
		return fmt.Errorf("disk: %s has no %s attribute: %w", u.File, f.attr, ErrNotOurs)
	case errors.Is(err, unix.ERANGE):
		return fmt.Errorf("disk: %s has a %s attribute that is no run id: %w", u.File, f.attr, ErrNotOurs)
	case errors.Is(err, unix.ENOTSUP):
		// No user xattrs on this filesystem: the name, the device and the inode are the proof.
		if st.Dev != u.Dev {
			return fmt.Errorf("disk: %s is on device %d, the fill was on %d: %w", u.File, st.Dev, u.Dev, ErrNotOurs)
		}
		if u.Ino != 0 && st.Ino != u.Ino {
			return fmt.Errorf("disk: %s is inode %d, the fill was %d: %w", u.File, st.Ino, u.Ino, ErrNotOurs)
		}
		return nil
	default:
		return fmt.Errorf("disk: read %s of %s: %w", f.attr, u.File, err)
	}
}
