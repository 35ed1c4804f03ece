package runner

import (
	"container/heap"
	"time"
)

// ends orders one fault type's runs in place by planned end (a min-heap), so that the
// planned-end gauge costs O(log n) per run started or ended, not a walk of every active run
// (which showed in profiles of 200 runs on a tick: docs/performance.md).
type ends []*run

func (h ends) Len() int           { return len(h) }
func (h ends) Less(i, j int) bool { return h[i].end.Before(h[j].end) }
func (h ends) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].endAt, h[j].endAt = i+1, j+1
}
func (h *ends) Push(x any) {
	rn := x.(*run)
	*h = append(*h, rn)
	rn.endAt = len(*h)
}
func (h *ends) Pop() any {
	old := *h
	rn := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	rn.endAt = 0
	return rn
}

// addEndLocked counts rn, whose fault is now in place until rn.end. r.mu is held.
func (r *Runner) addEndLocked(rn *run) {
	h := r.ends[rn.ftype]
	if h == nil {
		h = &ends{}
		r.ends[rn.ftype] = h
	}
	heap.Push(h, rn)
	r.setPlannedEndLocked(rn.ftype)
}

// dropEndLocked forgets rn, if it was counted. r.mu is held.
func (r *Runner) dropEndLocked(rn *run) {
	if rn.endAt == 0 {
		return
	}
	heap.Remove(r.ends[rn.ftype], rn.endAt-1)
	r.setPlannedEndLocked(rn.ftype)
}

// setPlannedEndLocked sets the earliest planned end among ftype's faults in place, or 0
// when none is. An alert on "now is well past it" is exact per run, which a gauge of active
// faults is not: two overlapping runs look like one long fault. r.mu is held.
func (r *Runner) setPlannedEndLocked(ftype string) {
	v := 0.0
	if h := r.ends[ftype]; h != nil && h.Len() > 0 {
		v = float64((*h)[0].end.UnixNano()) / float64(time.Second)
	}
	r.m.PlannedEnd.WithLabelValues(ftype).Set(v)
}
