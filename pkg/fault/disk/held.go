package disk

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

// ErrLeftBehind is returned by Revert when it cannot prove that the fill is gone: its
// directory is not the recorded one any more, or its inode still has a link after the
// removal. The error says where the fill may be; the run's cleanup stays failed.
var ErrLeftBehind = errors.New("the fill may still exist")

// held is what the agent that injected a fill keeps of it until Revert: the descriptors of
// the fill's directory and of the file itself. Through them Revert removes the fill wherever
// the directory has been moved to, and proves it gone by the file's link count. A held with
// no file (-1) records that Inject left nothing of its run behind.
type held struct{ dir, file int }

func (h *held) close() {
	for _, fd := range []int{h.dir, h.file} {
		if fd >= 0 {
			_ = unix.Close(fd)
		}
	}
}

// keep records h as run's, for Revert in this process.
func (f *Fault) keep(run string, h *held) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if old := f.held[run]; old != nil {
		old.close()
	}
	if f.held == nil {
		f.held = map[string]*held{}
	}
	f.held[run] = h
}

// take returns and forgets what this process holds of run, or nil.
func (f *Fault) take(run string) *held {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.held[run]
	delete(f.held, run)
	return h
}

// removeHeld removes the fill this process holds and proves it gone.
func (f *Fault) removeHeld(h *held, u *undo) error {
	defer h.close()
	if h.file < 0 {
		return nil // Inject created nothing, or removed it all itself
	}
	var mine, there unix.Stat_t
	if err := unix.Fstat(h.file, &mine); err != nil {
		return fmt.Errorf("disk: fstat %s: %w", u.File, err)
	}
	base := fillName(u)
	err := unix.Fstatat(h.dir, base, &there, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case err == nil && sameFile(&mine, &there):
		if err := unix.Unlinkat(h.dir, base, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("disk: remove %s: %w", u.File, err)
		}
		if err := unix.Fsync(h.dir); err != nil {
			return fmt.Errorf("disk: fsync the directory of %s: %w", u.File, err)
		}
	case err == nil, errors.Is(err, unix.ENOENT):
		// Another file has the name, or none: the fill was moved, not ours to chase.
	default:
		return fmt.Errorf("disk: stat %s: %w", u.File, err)
	}
	return proveGone(h.file, u)
}

// proveGone checks that the fill open as fd has no name left anywhere: once its descriptors
// are closed, its blocks are free.
func proveGone(fd int, u *undo) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("disk: fstat %s: %w", u.File, err)
	}
	if st.Nlink != 0 {
		return fmt.Errorf("disk: the fill of run %s (%s, inode %d on device %s) still has %d link(s) after removing %s: %w",
			u.Run, fault.Size(st.Blocks*512), st.Ino, devString(st.Dev), st.Nlink, u.File, ErrLeftBehind)
	}
	return nil
}
