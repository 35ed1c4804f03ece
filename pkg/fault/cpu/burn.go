package cpu

import (
	"context"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// defaultPeriod is the length of one duty cycle: a worker at load L spins for L×period of CPU
// time and sleeps for the rest. It is 100 ms, measured (BenchmarkPeriod; figures in
// docs/performance.md): shorter periods overshoot the target share more, because each
// wake-up of a locked thread costs the Go runtime CPU on other threads. Nothing is gained by
// shorter periods: every CPU graph (top, node_exporter, cAdvisor) averages over a second or
// more. 100 ms is also the CFS bandwidth period, so in a container with a CPU limit the burn
// is throttled the way the application would be.
const defaultPeriod = 100 * time.Millisecond

// burn is one run's set of burning threads.
type burn struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when every worker has returned
}

func (b *burn) stop() { b.cancel() }

// start launches workers burners at duty cycle fraction (0 < fraction ≤ 1), stopped by ctx or
// by b.stop.
func start(ctx context.Context, workers int, fraction float64, period time.Duration) *burn {
	ctx, cancel := context.WithCancel(ctx)
	b := &burn{cancel: cancel, done: make(chan struct{})}
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range workers {
		// Stagger the workers' phases across the period: two workers at 50% then keep one CPU
		// busy all the time, as a steady load would, instead of two CPUs for 50 ms and none for
		// the next 50 ms. In phase they would also compete for the same cores at the same
		// moments on a small host and fall short of their share (measured: 46.7% instead of 50%
		// per worker on 2 cores).
		first := t0.Add(period * time.Duration(i) / time.Duration(workers))
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A thread of its own, so the spin is one kernel-visible busy thread per worker and
			// the Go scheduler cannot move other goroutines (the agent's own work) onto it. The
			// goroutine exits still locked, which makes the runtime end the thread too: the
			// agent's thread count is back where it was after Revert.
			runtime.LockOSThread()
			spin(ctx.Done(), fraction, period, first)
		}()
	}
	go func() {
		wg.Wait()
		cancel() // release the context's resources when it ended by itself
		close(b.done)
	}()
	return b
}

// spin alternates idle and busy phases, the first cycle starting at first, until stop is
// closed. It must run on a locked OS thread: the busy phase is measured in this thread's own
// CPU time.
//
// Cycles are scheduled against absolute deadlines (first + k×period), so sleep overshoot does
// not accumulate into drift. The busy phase spins until the thread has really been given
// fraction×period of CPU time in this cycle, not merely until that much wall time has passed:
// a wall-clock spin loses whatever the thread waits for its wake-up or spends preempted by
// other work, and so falls short of its load on a busy host (measured with two stress-ng hogs
// on the 2 cores: 26 to 28% instead of 50% by wall clock; 50.4 to 50.8% by thread CPU time).
// It never spins past the end of its cycle, so on a host too busy to give it its share a
// worker takes what it can get rather than catch up later in a burst.
func spin(stop <-chan struct{}, fraction float64, period time.Duration, first time.Time) {
	busy := time.Duration(float64(period) * fraction)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()

	next := first
	for {
		if d := time.Until(next); d > 0 {
			timer.Reset(d)
			select {
			case <-stop:
				return
			case <-timer.C:
			}
		}
		end := next.Add(period)
		used0, clock := threadCPU()
		busyUntil := time.Now().Add(busy)
		for {
			if busyUntil.After(end) {
				busyUntil = end
			}
			for now := time.Now(); now.Before(busyUntil); now = time.Now() {
				select {
				case <-stop:
					return
				default:
				}
			}
			if !clock || !time.Now().Before(end) {
				break
			}
			// Reading the thread's CPU clock is a system call, so it is read once per wall-clock
			// stretch rather than in the spin loop itself.
			used, ok := threadCPU()
			short := busy - (used - used0)
			if !ok || short < minShort {
				break
			}
			busyUntil = time.Now().Add(short)
		}
		next = end
		if now := time.Now(); now.After(next) {
			// Preempted long enough to miss a whole cycle (an overloaded host): go on from now.
			next = now
		}
	}
}

// minShort is how little CPU time a busy phase may miss before it is extended: about one
// extra clock read and spin round.
const minShort = 20 * time.Microsecond

// threadCPU is the CPU time the calling OS thread has used. Without it (it cannot fail on
// Linux) the busy phase is timed by the wall clock alone.
func threadCPU() (time.Duration, bool) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}
