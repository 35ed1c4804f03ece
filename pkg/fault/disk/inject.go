package disk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

const (
	// writeChunk is the size of one write(2) for method write.
	writeChunk = 1 << 20
	// fallocateChunk bounds one fallocate(2), so a cancelled context is noticed within a
	// chunk even on a filesystem that allocates slowly.
	fallocateChunk = 1 << 30
)

// Inject creates the fill file and fills it. It recomputes the size against the free space of
// now (it may have changed since Plan), so the reserve holds at the moment of filling; if by
// then there is nothing to fill, it creates nothing and returns an error wrapping
// fault.ErrSkip. Fills of this agent on one filesystem are sized and allocated one at a time
// (see fills), so they count each other.
//
// The file is made with O_TMPFILE: it has no name while it is being filled and tagged, and
// gets its name by linkat(2) only once it is complete and synced. linkat never replaces an
// existing name, so nothing is clobbered; and if the agent dies half-way, the kernel frees the
// nameless file by itself, so not even a crash in the middle of Inject leaves a fill behind.
// On filesystems without O_TMPFILE it falls back to O_CREAT|O_EXCL and tags the file before
// allocating anything. On any error Inject removes what it created.
//
// Everything happens relative to the directory planned, opened without following symlinks
// and checked by device and inode; its descriptor and the file's stay open until Revert.
func (f *Fault) Inject(ctx context.Context, plan fault.Undo) (fault.Undo, error) {
	var u undo
	if err := json.Unmarshal(plan, &u); err != nil {
		return nil, fmt.Errorf("disk: decode plan: %w", err)
	}
	if err := u.check(); err != nil {
		return nil, err
	}
	h, err := f.inject(ctx, &u)
	if h.file < 0 && h.dir >= 0 {
		_ = unix.Close(h.dir) // nothing to come back to
		h.dir = -1
	}
	f.keep(u.Run, h)
	if err != nil && h.file >= 0 {
		return u.marshal(), err // a fill Inject could not remove: Revert tries again
	}
	if err != nil {
		return nil, err
	}
	f.log.Debug("disk fill created", "run", u.Run, "file", u.File, "bytes", u.Bytes, "method", u.Method, "clamped", u.Clamped)
	return u.marshal(), nil
}

// inject does Inject's work on u. It always returns what is left of the run: the descriptors
// of the directory and the file, or -1 for the file when nothing is.
func (f *Fault) inject(ctx context.Context, u *undo) (*held, error) {
	none := &held{dir: -1, file: -1}
	dir, base := filepath.Dir(u.File), fillName(u)
	if dir != f.path {
		// The plan's directory is the configured path with its symlinks resolved.
		if r, err := filepath.EvalSymlinks(f.path); err != nil || r != dir {
			return none, fmt.Errorf("disk: plan file %s is not in %s", u.File, f.path)
		}
	}
	if err := ctx.Err(); err != nil {
		return none, fmt.Errorf("disk: inject: %w", err)
	}
	dfd, st, err := f.openDir(dir)
	if err != nil {
		return none, fmt.Errorf("disk: %w", err)
	}
	none.dir = dfd
	if st.Dev != u.Dev {
		return none, fmt.Errorf("disk: %s is on another filesystem than when planned (device %d, planned %d)", dir, st.Dev, u.Dev)
	}
	if u.DirIno != 0 && st.Ino != u.DirIno {
		return none, fmt.Errorf("disk: %s is another directory than when planned (inode %d, planned %d)", dir, st.Ino, u.DirIno)
	}
	unlock, err := lockDev(ctx, st.Dev)
	if err != nil {
		return none, fmt.Errorf("disk: inject: %w", err)
	}
	defer unlock()
	var fs unix.Statfs_t
	if err := unix.Fstatfs(dfd, &fs); err != nil {
		return none, fmt.Errorf("disk: statfs %s: %w", dir, err)
	}
	f.size2fill(u, fs)
	if u.Bytes <= 0 {
		return none, fmt.Errorf("disk: %s: %w", f.nothingToFill(u, fs), fault.ErrSkip)
	}

	fd, named, err := f.create(dfd, dir, base)
	if err != nil {
		return none, err
	}
	// fail reverses what was created so far: a nameless file vanishes with its descriptor;
	// a named one is removed if the name still leads to the file open here.
	fail := func(err error) (*held, error) {
		if named {
			if rerr := removeCreated(fd, dfd, base); rerr != nil {
				return &held{dir: dfd, file: fd}, errors.Join(err, fmt.Errorf("remove %s: %w", u.File, rerr))
			}
		}
		_ = unix.Close(fd)
		return none, err
	}

	if err := unix.Fsetxattr(fd, f.attr, []byte(u.Run), 0); err == nil {
		u.Xattr = true
	} else if !errnoIn(err, unix.ENOTSUP) {
		return fail(fmt.Errorf("disk: tag %s with %s: %w", u.File, f.attr, err))
	}
	var fst unix.Stat_t
	if err := unix.Fstat(fd, &fst); err != nil {
		return fail(fmt.Errorf("disk: fstat %s: %w", u.File, err))
	}
	u.Ino = fst.Ino

	method, err := f.fill(ctx, fd, u.Bytes)
	if err != nil {
		return fail(fmt.Errorf("disk: fill %s with %s: %w", u.File, fault.Size(u.Bytes), err))
	}
	u.Method = method
	// The blocks are the fault: sync them, so the journal's "active" is true after a crash.
	if err := unix.Fsync(fd); err != nil {
		return fail(fmt.Errorf("disk: fsync %s: %w", u.File, err))
	}
	if !named {
		if err := link(fd, dfd, base); err != nil {
			return fail(fmt.Errorf("disk: name %s: %w", u.File, err))
		}
		named = true
	}
	if err := unix.Fsync(dfd); err != nil {
		return fail(fmt.Errorf("disk: fsync %s: %w", dir, err))
	}
	return &held{dir: dfd, file: fd}, nil
}

// create opens a new file for the fill in the directory dfd (named dir, for errors):
// nameless where the filesystem supports O_TMPFILE, else as base with O_EXCL.
func (f *Fault) create(dfd int, dir, base string) (fd int, named bool, err error) {
	const flags = unix.O_RDWR | unix.O_CLOEXEC
	if !f.noTmpfile {
		fd, err = unix.Openat(dfd, ".", flags|unix.O_TMPFILE, 0o600)
		if err == nil {
			return fd, false, nil
		}
		// EOPNOTSUPP: the filesystem has no O_TMPFILE; EISDIR: the kernel predates it.
		if !errnoIn(err, unix.EOPNOTSUPP, unix.EISDIR) {
			return -1, false, fmt.Errorf("disk: create in %s: %w", dir, err)
		}
	}
	fd, err = unix.Openat(dfd, base, flags|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return -1, false, fmt.Errorf("disk: create %s: %w", filepath.Join(dir, base), err)
	}
	return fd, true, nil
}

// link gives the nameless file fd the name base in the directory dfd, failing with EEXIST
// rather than replace anything. AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH (ENOENT without
// it); linkViaProc works without.
func link(fd, dfd int, base string) error {
	err := unix.Linkat(fd, "", dfd, base, unix.AT_EMPTY_PATH)
	if errnoIn(err, unix.EPERM, unix.ENOENT, unix.EINVAL) {
		err = linkViaProc(fd, dfd, base)
	}
	return err
}

// linkViaProc links fd through its magic link in this process's own /proc (the agent's, not
// the Env's host /proc, which may be a fixture).
func linkViaProc(fd, dfd int, base string) error {
	return unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), dfd, base, unix.AT_SYMLINK_FOLLOW)
}

// removeCreated removes base from the directory dfd if it is still the file open as fd.
func removeCreated(fd, dfd int, base string) error {
	var mine, there unix.Stat_t
	if err := unix.Fstat(fd, &mine); err != nil {
		return err
	}
	if err := unix.Fstatat(dfd, base, &there, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	if !sameFile(&mine, &there) {
		return fmt.Errorf("the name leads to another file now: %w", ErrNotOurs)
	}
	if err := unix.Unlinkat(dfd, base, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return unix.Fsync(dfd)
}

// fill makes the file n bytes long with every block allocated, and returns the method used.
func (f *Fault) fill(ctx context.Context, fd int, n int64) (string, error) {
	if f.method == methodFallocate {
		err := f.allocate(ctx, fd, n)
		if err == nil {
			return methodFallocate, nil
		}
		if !errors.Is(err, errFallocateUnsupported) {
			return "", err
		}
		f.log.Debug("fallocate does not allocate here, writing instead", "reason", err)
		if err := unix.Ftruncate(fd, 0); err != nil {
			return "", err
		}
	}
	return methodWrite, write(ctx, fd, n)
}

var errFallocateUnsupported = errors.New("fallocate unsupported")

func (f *Fault) allocate(ctx context.Context, fd int, n int64) error {
	for off := int64(0); off < n; off += fallocateChunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := f.fallocate(fd, 0, off, min(fallocateChunk, n-off))
		if off == 0 && errnoIn(err, unix.EOPNOTSUPP) {
			return fmt.Errorf("%w: %w", errFallocateUnsupported, err)
		}
		if err != nil {
			return fmt.Errorf("fallocate: %w", err)
		}
	}
	// Some filesystems accept fallocate without reserving blocks (ZFS, copy-on-write
	// filesystems in some modes): a "fill" that fills nothing is worse than a slow one.
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Blocks*512 < n {
		return fmt.Errorf("%w: %d of %d bytes allocated", errFallocateUnsupported, st.Blocks*512, n)
	}
	return nil
}

// write writes n bytes of pseudo-random data. Random, not zeros nor a repeated pattern:
// filesystems that compress (btrfs, ZFS) would store a pattern in a fraction of its size and
// ZFS turns all-zero blocks into holes, and deduplicating ones (ZFS dedup, some storage
// arrays) keep one copy of identical chunks. ChaCha8 with a fresh seed makes every chunk of
// every fill different, faster on one core than a disk takes the writes (docs/performance.md).
func write(ctx context.Context, fd int, n int64) error {
	rng := rand.NewChaCha8(seed())
	buf := make([]byte, writeChunk)
	for off := int64(0); off < n; {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk := buf[:min(int64(len(buf)), n-off)]
		_, _ = rng.Read(chunk) // never fails
		w, err := unix.Pwrite(fd, chunk, off)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("write: %w", err)
		}
		off += int64(w)
	}
	return nil
}

func seed() (s [32]byte) {
	for i := 0; i < len(s); i += 8 {
		v := rand.Uint64()
		for j := range 8 {
			s[i+j] = byte(v >> (8 * j))
		}
	}
	return s
}
