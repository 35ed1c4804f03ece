package disk

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

// TestConcurrentFills runs two fills (two experiments, so two Faults) on one filesystem at
// the same time: together they must keep the reserve, and percent fills must not add up to
// more than the filesystem holds.
//
// Each fill's first fallocate waits for the other fill to reach its own, for at most a
// second: where fills are sized one at a time the other never arrives (it waits for the
// first) and the wait only makes the test slower; where they are not, both have sized
// themselves against the same free space by then, and the overfill shows every time.
func TestConcurrentFills(t *testing.T) {
	const fsSize, reserve = 256 << 20, 64 << 20
	for _, tc := range []struct {
		name   string
		params fault.Params
		check  func(t *testing.T, dir string, errs []error)
	}{
		{"reserve", fault.Params{"size": "100MiB", "reserve": "64MiB"}, func(t *testing.T, dir string, errs []error) {
			for _, err := range errs {
				if err != nil {
					t.Errorf("Inject: %v; want both to fill, one clamped", err)
				}
			}
			if _, avail := statfs(t, dir); avail < reserve {
				t.Errorf("%.1f MiB available; want at least the reserve of 64 MiB", float64(avail)/(1<<20))
			}
		}},
		{"percent", fault.Params{"percent": "60%", "reserve": 0}, func(t *testing.T, dir string, errs []error) {
			var filled, skipped int
			for _, err := range errs {
				switch {
				case err == nil:
					filled++
				case errors.Is(err, fault.ErrSkip):
					skipped++
				default:
					t.Errorf("Inject: %v; want success or nothing to fill", err)
				}
			}
			if filled != 1 || skipped != 1 {
				t.Errorf("%d filled, %d had nothing to fill; want one of each", filled, skipped)
			}
			if got := used(t, dir); got > 61 {
				t.Errorf("%.1f%% used; want at most 60%% (+1)", got)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tmpfsOf(t, fsSize)
			arrived := [2]chan struct{}{make(chan struct{}), make(chan struct{})}
			var fs [2]*Fault
			var plans [2]fault.Undo
			for i := range fs {
				p := fault.Params{"path": dir, "method": "fallocate"}
				for k, v := range tc.params {
					p[k] = v
				}
				fs[i] = newFault(t, p)
				other := arrived[1-i]
				var once sync.Once
				fs[i].fallocate = func(fd int, mode uint32, off, n int64) error {
					once.Do(func() {
						close(arrived[i])
						select {
						case <-other:
						case <-time.After(time.Second):
						}
					})
					return unix.Fallocate(fd, mode, off, n)
				}
				plan, err := fs[i].Plan(t.Context(), "r"+string(rune('1'+i)))
				if err != nil {
					t.Fatal(err)
				}
				plans[i] = plan
				t.Cleanup(func() { _ = fs[i].Revert(context.Background(), plan) })
			}
			var errs [2]error
			var undos [2]fault.Undo
			var wg sync.WaitGroup
			for i := range fs {
				wg.Go(func() { undos[i], errs[i] = fs[i].Inject(t.Context(), plans[i]) })
			}
			wg.Wait()
			_, avail := statfs(t, dir)
			t.Logf("%.1f MiB available, %.1f%% used; inject errors %v", float64(avail)/(1<<20), used(t, dir), errs)
			tc.check(t, dir, errs[:])
			for i := range fs {
				if undos[i] != nil {
					revert(t, fs[i], undos[i])
				}
			}
			if _, after := statfs(t, dir); after != fsSize {
				t.Errorf("%d bytes available after both reverts; want all %d", after, fsSize)
			}
		})
	}
}
