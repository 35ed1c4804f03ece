package vm

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
)

// Archive is an initramfs being put together: files, directories, symlinks and device
// nodes, written as a gzip-compressed cpio "newc" archive, the format the kernel unpacks.
// Parent directories are added on their own. Adding a path twice keeps the last one.
//
// The kernel unpacks concatenated archives one after the other into the same root, so a
// large archive that never changes (busybox, modules, iproute2) can be built once and a small
// one with the test's own files appended per boot.
type Archive struct {
	entries map[string]*entry
	order   []string
}

type entry struct {
	mode         uint32 // file type and permissions, as in stat(2)
	data         []byte // file contents or symlink target
	src          string // host file to read the contents from, if data is nil
	rmajor, rmin uint32 // device number of a device node
}

const (
	sIFDIR = 0o040000
	sIFREG = 0o100000
	sIFLNK = 0o120000
	sIFCHR = 0o020000
)

// NewArchive returns an empty archive.
func NewArchive() *Archive { return &Archive{entries: map[string]*entry{}} }

func clean(p string) string { return strings.TrimPrefix(path.Clean("/"+p), "/") }

func (a *Archive) put(p string, e *entry) {
	p = clean(p)
	if p == "" {
		return
	}
	if dir := path.Dir(p); dir != "." {
		if _, ok := a.entries[dir]; !ok {
			a.put(dir, &entry{mode: sIFDIR | 0o755})
		}
	}
	if _, ok := a.entries[p]; !ok {
		a.order = append(a.order, p)
	}
	a.entries[p] = e
}

// Dir adds a directory.
func (a *Archive) Dir(p string, perm os.FileMode) {
	a.put(p, &entry{mode: sIFDIR | uint32(perm.Perm())})
}

// File adds a file with the given contents.
func (a *Archive) File(p string, perm os.FileMode, data []byte) {
	a.put(p, &entry{mode: sIFREG | uint32(perm.Perm()), data: data})
}

// HostFile adds the host file src (following symlinks) at p; its contents are read when the
// archive is written.
func (a *Archive) HostFile(p, src string, perm os.FileMode) {
	a.put(p, &entry{mode: sIFREG | uint32(perm.Perm()), src: src})
}

// Symlink adds a symbolic link p → target.
func (a *Archive) Symlink(p, target string) {
	a.put(p, &entry{mode: sIFLNK | 0o777, data: []byte(target)})
}

// CharDev adds a character device node (the kernel needs /dev/console before /init runs).
func (a *Archive) CharDev(p string, perm os.FileMode, major, minor uint32) {
	a.put(p, &entry{mode: sIFCHR | uint32(perm.Perm()), rmajor: major, rmin: minor})
}

// Has reports whether p is in the archive.
func (a *Archive) Has(p string) bool { _, ok := a.entries[clean(p)]; return ok }

// Paths lists the archive's paths, sorted.
func (a *Archive) Paths() []string {
	out := slices.Clone(a.order)
	slices.Sort(out)
	return out
}

// WriteTo writes the archive, gzip-compressed, to w. Directories come before what is in
// them. Every entry has one link, so inode numbers (which the kernel compares only to find
// hard links) may repeat across concatenated archives.
func (a *Archive) WriteTo(w io.Writer) (int64, error) {
	const ino = 1
	cw := &countWriter{w: w}
	zw, err := gzip.NewWriterLevel(cw, gzip.BestSpeed)
	if err != nil {
		return 0, err
	}
	paths := a.Paths() // sorted: "a" comes before "a/b"
	for i, p := range paths {
		e := a.entries[p]
		data := e.data
		if data == nil && e.src != "" {
			if data, err = os.ReadFile(e.src); err != nil {
				return cw.n, fmt.Errorf("initramfs %s: %w", p, err)
			}
		}
		if err := writeEntry(zw, ino+uint32(i), p, e, data); err != nil {
			return cw.n, err
		}
	}
	if err := writeEntry(zw, 0, "TRAILER!!!", &entry{}, nil); err != nil {
		return cw.n, err
	}
	if err := zw.Close(); err != nil {
		return cw.n, err
	}
	return cw.n, nil
}

// Bytes returns the compressed archive.
func (a *Archive) Bytes() ([]byte, error) {
	var b bytes.Buffer
	_, err := a.WriteTo(&b)
	return b.Bytes(), err
}

// writeEntry writes one newc header, name and data, each padded to 4 bytes.
func writeEntry(w io.Writer, ino uint32, name string, e *entry, data []byte) error {
	nlink := uint32(1)
	if e.mode&0o170000 == sIFDIR {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, e.mode, 0, 0, nlink, 0, len(data), 0, 0, e.rmajor, e.rmin, len(name)+1, 0)
	var b bytes.Buffer
	b.WriteString(hdr)
	b.WriteString(name)
	b.WriteByte(0)
	pad(&b)
	b.Write(data)
	pad(&b)
	_, err := w.Write(b.Bytes())
	return err
}

func pad(b *bytes.Buffer) {
	for b.Len()%4 != 0 {
		b.WriteByte(0)
	}
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
