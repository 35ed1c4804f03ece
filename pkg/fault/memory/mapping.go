package memory

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

var pageSize = unix.Getpagesize()

// held is every mapping this process holds, by run id, so that concurrent runs never free each
// other's memory and a Revert reaches the memory whichever Fault value it is called on.
//
// This is package state on purpose, against the house rule: the memory belongs to the process,
// not to a Fault value. The runner may revert through a different value than the one that
// injected (after a halt or a config reload), and Plan must see what other runs have mapped
// but not filled yet. A per-value map would leak the memory in the first case and overshoot
// the limit in the second.
var held = registry{m: map[string]*mapping{}}

type registry struct {
	mu sync.Mutex
	m  map[string]*mapping
}

// add registers m for run; false if run holds memory already.
func (r *registry) add(run string, m *mapping) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.m[run]; dup {
		return false
	}
	r.m[run] = m
	return true
}

// take removes and returns run's mapping, nil if there is none.
func (r *registry) take(run string) *mapping {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.m[run]
	delete(r.m, run)
	return m
}

// pending is how much of all mappings has not been touched yet.
func (r *registry) pending() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n int64
	for _, m := range r.m {
		n += int64(len(m.mem)) - m.filled.Load()
	}
	return n
}

// mapping is anonymous private memory from mmap, outside the Go heap, on purpose:
//   - munmap gives it back to the kernel at once; Go heap memory is returned only after a GC
//     cycle has found it dead and the scavenger has got round to it, which can take minutes;
//   - the Go garbage collector never sees it, so it neither doubles the heap goal (GOGC) nor
//     makes the GC thrash against a GOMEMLIMIT the agent may run with.
type mapping struct {
	mem    []byte
	huge   bool          // madvise(MADV_HUGEPAGE) accepted: fill need not populate
	filled atomic.Int64  // bytes touched so far, from the start of mem
	stop   chan struct{} // closed to make fill return early
	done   chan struct{} // closed when fill has returned
}

// newMapping maps size bytes, a whole number of pages. huge is the transparent huge page size
// to ask for, 0 for small pages only.
//
// Huge pages are what make the fill fast: one fault and one page table entry per 2MiB instead
// of 512 of each: an order of magnitude faster where the first write to a small page is dear,
// as in a virtual machine (unless the hypervisor has taken the memory back, and touching it
// again costs as much as small pages do; figures in docs/performance.md).
//
// The kernel uses a huge page only for an aligned range wholly inside the mapping, so the
// mapping starts on a huge page boundary. It ends exactly at size: the part after the last
// whole huge page gets small pages, and the resident amount is size, not size rounded up.
// Where the kernel has no transparent huge pages, madvise fails and small pages serve.
func newMapping(size int64, huge int) (*mapping, error) {
	m := &mapping{stop: make(chan struct{}), done: make(chan struct{})}
	n := uintptr(size)
	if huge <= 0 || size < int64(huge) {
		p, err := mmap(n)
		if err != nil {
			return nil, err
		}
		m.mem = unsafe.Slice((*byte)(p), n)
		if huge <= 0 {
			// Opted out: no huge pages also where THP is "always" and khugepaged would
			// collapse small ones. EINVAL means a kernel without THP: nothing to opt out of.
			_ = unix.Madvise(m.mem, unix.MADV_NOHUGEPAGE)
		}
		return m, nil
	}
	// One huge page more than needed, then unmap what lies before the first boundary and
	// after size: the rest is aligned and exactly size long.
	h := uintptr(huge)
	p, err := mmap(n + h)
	if err != nil {
		return nil, err
	}
	head := -uintptr(p) & (h - 1) // huge is a power of two
	start := unsafe.Add(p, head)
	for _, r := range []struct {
		at  unsafe.Pointer
		len uintptr
	}{{p, head}, {unsafe.Add(start, n), h - head}} {
		if r.len == 0 {
			continue
		}
		if err := unix.MunmapPtr(r.at, r.len); err != nil {
			_ = unix.MunmapPtr(p, n+h) // ranges no longer mapped are no error
			return nil, fmt.Errorf("trim to a huge page boundary: %w", err)
		}
	}
	m.mem = unsafe.Slice((*byte)(start), n)
	// Applies to the faults to come, so before fill. EINVAL: no THP in this kernel.
	m.huge = unix.Madvise(m.mem, unix.MADV_HUGEPAGE) == nil
	return m, nil
}

// hugePageSize is the transparent huge page size to ask for on the host whose sysfs is at sys:
// 0 when THP is switched off ("[never]"), else hpage_pmd_size. If sysfs cannot tell (not
// mounted in a container), 2MiB, the size on x86-64 and on arm64 with 4KiB pages: asking
// costs nothing where the kernel cannot oblige.
func hugePageSize(sys string) int {
	dir := filepath.Join(sys, "kernel", "mm", "transparent_hugepage")
	if b, err := os.ReadFile(filepath.Join(dir, "enabled")); err == nil && strings.Contains(string(b), "[never]") {
		return 0
	}
	if n, err := readInt(filepath.Join(dir, "hpage_pmd_size")); err == nil && n >= int64(pageSize) && n&(n-1) == 0 {
		return int(n)
	}
	return 2 << 20
}

func mmap(n uintptr) (unsafe.Pointer, error) {
	return unix.MmapPtr(-1, 0, nil, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
}

// unmap gives the memory back. Only for a mapping whose fill never started or has returned;
// release is for the others.
func (m *mapping) unmap() error {
	return unix.MunmapPtr(unsafe.Pointer(unsafe.SliceData(m.mem)), uintptr(len(m.mem)))
}

const (
	// chunk is how much fill touches between two looks at stop, so that Revert never waits
	// long for a fill in progress: a few milliseconds of work at most, even in small pages
	// on a virtual machine. Larger chunks fill no faster.
	chunk = 1 << 20
	// rampTick is how often a ramp grows: a smooth line for any ramp longer than a second.
	rampTick = 10 * time.Millisecond
)

// fill touches the whole mapping with the pattern, at once or spread evenly over ramp, and
// closes done when it has finished or was stopped.
func (m *mapping) fill(ramp time.Duration, p pattern) {
	defer close(m.done)
	var tick *time.Ticker
	if ramp > 0 {
		tick = time.NewTicker(rampTick)
		defer tick.Stop()
	}
	start := time.Now()
	size := len(m.mem)
	for off := 0; off < size; {
		want := size
		if ramp > 0 {
			if el := time.Since(start); el < ramp {
				want = int(float64(size) * (float64(el) / float64(ramp)))
				want -= want % pageSize
			}
			if off >= want {
				select {
				case <-m.stop:
					return
				case <-tick.C:
				}
				continue
			}
		}
		end := min(off+chunk, want)
		if !m.huge {
			// One madvise faults the chunk in, instead of one trap per small page (faster,
			// measured). Not with huge pages, where it costs: a fault per 2MiB is cheap, and
			// the page it zeroes is then written while still in the cache. Kernels before
			// 5.14 refuse it; the writes fault the pages in then.
			_ = unix.Madvise(m.mem[off:end], unix.MADV_POPULATE_WRITE)
		}
		p.fill(m.mem[off:end])
		off = end
		m.filled.Store(int64(off))
		select {
		case <-m.stop:
			return
		default:
		}
	}
}

// release stops fill, waits for it (it must not write into memory that is gone) and unmaps.
// fill must have been started.
func (m *mapping) release() error {
	select {
	case <-m.done: // fill has finished
	default:
		close(m.stop)
		<-m.done
	}
	return m.unmap()
}
