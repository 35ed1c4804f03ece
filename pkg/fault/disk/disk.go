// Package disk is the "disk" fault: it fills a filesystem with one file for a while.
//
// Parameters:
//
//	path     directory to put the fill file in; required, absolute
//	size     bytes to fill ("2GiB"); exactly one of size and percent is required
//	percent  fill until the filesystem is this much used ("90%"), where used means
//	         1 − available/total from statfs(2) (f_bavail/f_blocks): the same figure as
//	         node_exporter's 1 − avail_bytes/size_bytes and the kubelet's nodefs.available.
//	         df(1) prints a larger Use% on filesystems with a root reserve, because it
//	         divides by used+available instead of by the total.
//	reserve  always leave at least this much available (default 64MiB; 0 allows a full
//	         disk). A fill that would cut into it is clamped, and the undo says so.
//	method   fallocate (default) or write. fallocate allocates the blocks at once; where the
//	         filesystem cannot (EOPNOTSUPP, or it returns without allocating, as ZFS does),
//	         the fill falls back to writing.
//
// The fill file is <path>/.chaoscron-fill-<run>. It is only ever created new, never over
// something else, and it carries the extended attribute user.chaoscron.run=<run> where the
// filesystem supports user xattrs. Revert removes a file only when it can prove it is that
// file: see Revert.
package disk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

func init() { fault.Register("disk", New) }

const (
	defaultReserve = 64 << 20
	filePrefix     = ".chaoscron-fill-"
	runAttr        = "user.chaoscron.run"

	methodFallocate = "fallocate"
	methodWrite     = "write"
)

// runPattern is what a run id may look like to become part of a file name: no "/", no NUL,
// nothing a shell or a log would misread.
var runPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// ErrNotOurs is returned by Revert when something sits at the fill file's name that cannot be
// proved to be chaoscron's file. It is left alone, and the error keeps the run's cleanup open
// so that a person looks at it.
var ErrNotOurs = errors.New("not created by chaoscron")

// Fault is a configured disk fill.
type Fault struct {
	path    string
	size    fault.Size    // 0 when percent is used
	percent fault.Percent // 0 when size is used
	reserve fault.Size
	method  string
	log     *slog.Logger

	mu   sync.Mutex
	held map[string]*held // by run: what this process holds of its fills until Revert

	// Seams for tests, set only by this package's own tests.
	attr      string                                        // xattr name; runAttr
	noTmpfile bool                                          // skip O_TMPFILE, as on filesystems without it
	noOpenat2 bool                                          // walk the path, as on kernels without openat2
	fallocate func(fd int, mode uint32, off, n int64) error // unix.Fallocate
}

var (
	_ fault.Fault     = (*Fault)(nil)
	_ fault.Describer = (*Fault)(nil)
)

type params struct {
	Path    *string        `param:"path"`
	Size    *fault.Size    `param:"size"`
	Percent *fault.Percent `param:"percent"`
	Reserve *fault.Size    `param:"reserve"`
	Method  *string        `param:"method"`
}

// New validates params and builds a Fault. It reads nothing from the filesystem, so a config
// can be validated on a machine that does not have the path.
func New(p fault.Params, env fault.Env) (fault.Fault, error) {
	var in params
	var es fault.Errors = fault.FieldErrors(fault.Decode(p, &in))
	f := &Fault{
		reserve:   defaultReserve,
		method:    methodFallocate,
		log:       env.WithDefaults().Log,
		attr:      runAttr,
		fallocate: unix.Fallocate,
	}
	switch {
	case in.Path == nil:
		if !es.Has("path") {
			es.Add("path", "is required: the directory to fill")
		}
	case !filepath.IsAbs(*in.Path):
		es.Add("path", fmt.Sprintf("must be an absolute path, got %q", *in.Path))
	default:
		f.path = filepath.Clean(*in.Path)
	}
	switch {
	case in.Size != nil && in.Percent != nil:
		es.Add("percent", "set either size or percent, not both")
	case in.Size != nil:
		if *in.Size <= 0 {
			es.Add("size", "must be above 0")
		}
		f.size = *in.Size
	case in.Percent != nil:
		if *in.Percent <= 0 {
			es.Add("percent", "must be above 0%")
		}
		f.percent = *in.Percent
	default:
		if !es.Has("size") && !es.Has("percent") {
			es.Add("size", "one of size or percent is required")
		}
	}
	if in.Reserve != nil {
		f.reserve = *in.Reserve
	}
	if in.Method != nil {
		switch m := *in.Method; m {
		case methodFallocate, methodWrite:
			f.method = m
		default:
			es.Add("method", fmt.Sprintf("%q is not a method (known: fallocate, write)", m))
		}
	}
	if err := es.Err(); err != nil {
		return nil, err
	}
	return f, nil
}

// Describe says in one line what Inject will do.
func (f *Fault) Describe() string {
	what := "with " + f.size.String()
	if f.size == 0 {
		what = "until " + f.percent.String() + " used"
	}
	return fmt.Sprintf("fill %s %s (%s, leaving at least %s available)", f.path, what, f.method, f.reserve)
}

// undo is the JSON the journal keeps for a run, e.g.
//
//	{"run":"42","file":"/data/.chaoscron-fill-42","bytes":1073741824,"requested":1073741824,
//	 "dev":2049,"dir_ino":2,"method":"fallocate","ino":131090,"xattr":true}
//
// Plan fills in run, file, dev, dir_ino, method and the bytes it expects; Inject returns it
// again with the bytes really filled (free space may have changed in between), the method
// really used, and the file's inode and whether it carries the run xattr. file is in the
// directory as resolved at Plan (symlinks followed then); dev and dir_ino are that
// directory's st_dev and st_ino. Undos of earlier versions have no dir_ino: see Revert.
type undo struct {
	Run       string `json:"run"`
	File      string `json:"file"`
	Bytes     int64  `json:"bytes"`
	Requested int64  `json:"requested"` // before clamping to the reserve
	Clamped   bool   `json:"clamped,omitempty"`
	Dev       uint64 `json:"dev"`
	DirIno    uint64 `json:"dir_ino,omitempty"`
	Method    string `json:"method"`
	Ino       uint64 `json:"ino,omitempty"`
	Xattr     bool   `json:"xattr,omitempty"`
}

func (u *undo) marshal() fault.Undo {
	b, err := json.Marshal(u)
	if err != nil {
		panic(err) // a struct of strings, ints and bools always marshals
	}
	return b
}

// check reports whether u names a fill file at all: an absolute path whose base name is the
// fill prefix and a valid run id. Nothing is ever removed on the word of an undo that fails it.
func (u *undo) check() error {
	if !runPattern.MatchString(u.Run) {
		return fmt.Errorf("disk: undo has an invalid run id %q", u.Run)
	}
	if !filepath.IsAbs(u.File) || filepath.Clean(u.File) != u.File || filepath.Base(u.File) != filePrefix+u.Run {
		return fmt.Errorf("disk: undo file %q is not a fill file of run %q", u.File, u.Run)
	}
	return nil
}

// Plan resolves path to a directory and works out how much to fill now. It touches
// nothing. When there is nothing to fill (already that full, or no room above the reserve)
// it returns an error wrapping fault.ErrSkip.
func (f *Fault) Plan(ctx context.Context, run string) (fault.Undo, error) {
	if !runPattern.MatchString(run) {
		return nil, fmt.Errorf("disk: run id %q cannot be part of a file name", run)
	}
	// The symlinks of the configured path as they are now are the admin's; any swapped in
	// later are not followed (see openDir).
	dir, err := filepath.EvalSymlinks(f.path)
	if err != nil {
		return nil, fmt.Errorf("disk: %w", err)
	}
	dfd, st, err := f.openDir(dir)
	if err != nil {
		return nil, fmt.Errorf("disk: %w", err)
	}
	defer unix.Close(dfd)
	// Under the fill lock, so that the plan does not count a fill being allocated as
	// half-there.
	unlock, err := lockDev(ctx, st.Dev)
	if err != nil {
		return nil, fmt.Errorf("disk: plan: %w", err)
	}
	defer unlock()
	var fs unix.Statfs_t
	if err := unix.Fstatfs(dfd, &fs); err != nil {
		return nil, fmt.Errorf("disk: statfs %s: %w", dir, err)
	}
	u := &undo{Run: run, File: filepath.Join(dir, filePrefix+run), Dev: st.Dev, DirIno: st.Ino, Method: f.method}
	f.size2fill(u, fs)
	if u.Bytes <= 0 {
		return nil, fmt.Errorf("disk: %s: %w", f.nothingToFill(u, fs), fault.ErrSkip)
	}
	return u.marshal(), nil
}

// fillName is the fill file's name in its directory.
func fillName(u *undo) string { return filepath.Base(u.File) }

// space is a filesystem's total and available bytes, as statfs reports them to an
// unprivileged writer.
func space(fs unix.Statfs_t) (total, avail int64) {
	bs := fs.Frsize
	if bs == 0 {
		bs = fs.Bsize
	}
	return int64(fs.Blocks) * bs, int64(fs.Bavail) * bs
}

// size2fill sets u's Requested, Bytes and Clamped for a filesystem in state fs.
func (f *Fault) size2fill(u *undo, fs unix.Statfs_t) {
	total, avail := space(fs)
	if f.size > 0 {
		u.Requested = int64(f.size)
	} else {
		used := total - avail
		u.Requested = int64(f.percent.Fraction()*float64(total)) - used
	}
	u.Bytes = min(u.Requested, avail-int64(f.reserve))
	u.Clamped = u.Bytes < u.Requested
	u.Bytes = max(u.Bytes, 0)
}

func (f *Fault) nothingToFill(u *undo, fs unix.Statfs_t) string {
	total, avail := space(fs)
	if total == 0 {
		// ramfs and the like: no size, no free space to measure, nothing safe to do.
		return fmt.Sprintf("the filesystem of %s reports no size", f.path)
	}
	if u.Requested <= 0 {
		return fmt.Sprintf("%s is already %.1f%% used, at or above the %s asked for", f.path, 100*float64(total-avail)/float64(total), f.percent)
	}
	return fmt.Sprintf("%s has %s available, no more than the reserve of %s", f.path, fault.Size(avail), f.reserve)
}

// errnoIn reports whether err is one of the errnos.
func errnoIn(err error, errnos ...unix.Errno) bool {
	for _, e := range errnos {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
