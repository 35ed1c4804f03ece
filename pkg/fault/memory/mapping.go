package memory

import (
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
	filled atomic.Int64  // bytes touched so far, from the start of mem
	stop   chan struct{} // closed to make fill return early
	done   chan struct{} // closed when fill has returned
}

func newMapping(size int64) (*mapping, error) {
	mem, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, err
	}
	return &mapping{mem: mem, stop: make(chan struct{}), done: make(chan struct{})}, nil
}

const (
	// chunk is how much fill touches between two looks at stop: about a millisecond of work,
	// so Revert never waits long for a fill in progress.
	chunk = 4 << 20
	// rampTick is how often a ramp grows: a smooth line for any ramp longer than a second.
	rampTick = 10 * time.Millisecond
)

// fill touches the whole mapping with pseudo-random data, at once or spread evenly over ramp,
// and closes done when it has finished or was stopped.
func (m *mapping) fill(ramp time.Duration, seed uint64) {
	defer close(m.done)
	x := seed | 1 // xorshift must not start at 0
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
		// One madvise faults the whole chunk in, instead of one trap per page: about twice
		// the fill rate here. Kernels before 5.14 refuse it; the writes fault it in then.
		_ = unix.Madvise(m.mem[off:end], unix.MADV_POPULATE_WRITE)
		x = xorshiftFill(m.mem[off:end], x)
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
	return unix.Munmap(m.mem)
}

// xorshiftFill writes a xorshift64 sequence over b (a multiple of 8 bytes, 8-byte aligned:
// it is always a whole number of pages of a mapping) and returns the state to carry on with.
// Every word differs and none is zero, so neither zswap, KSM nor a compressing swap device
// can make the pages cheaper than their size.
func xorshiftFill(b []byte, x uint64) uint64 {
	if len(b) == 0 {
		return x
	}
	words := unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/8)
	for i := range words {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		words[i] = x
	}
	return x
}
