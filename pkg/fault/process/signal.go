package process

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shirou/gopsutil/v4/process"
	"golang.org/x/sys/unix"
)

// handle is one target process, checked to be the very process the undo names.
//
// Where the kernel has pidfds (5.3+), the check is race-free: the pidfd is opened first and
// the identity read after, so if the check passes the fd refers to that process, and a signal
// sent through it can never reach a later process that reuses the pid. Without pidfds
// (old kernels, seccomp filters) it falls back to kill(2) right after the check, which leaves
// the usual tiny window.
type handle struct {
	pid        int
	fd         int // pidfd, or -1
	proc       string
	startTicks uint64
}

// openTarget returns a handle on t, or nil and the reason when the process t names is gone
// (exited, or its pid now belongs to another process).
func openTarget(ctx context.Context, proc string, t *target) (*handle, string, error) {
	if t.Pid <= 0 {
		return nil, "", fmt.Errorf("pid %d is not a process", t.Pid)
	}
	fd, err := unix.PidfdOpen(t.Pid, 0)
	switch {
	case errors.Is(err, unix.ESRCH):
		return nil, "exited", nil
	case err != nil:
		fd = -1
	}
	h := &handle{pid: t.Pid, fd: fd, proc: proc}
	why, err := h.identify(ctx, t)
	if err != nil || why != "" {
		h.close()
		return nil, why, err
	}
	return h, "", nil
}

// identify compares the live process with t: by start time in clock ticks (exact, and immune
// to clock steps, unlike a create time computed from the boot time), or, for an undo written
// by hand without ticks, by create time to the second.
func (h *handle) identify(ctx context.Context, t *target) (string, error) {
	st, err := readStat(h.proc, h.pid)
	if errors.Is(err, errGone) {
		return "exited", nil
	}
	if err != nil {
		return "", err
	}
	if st.gone() {
		return "exited", nil
	}
	switch {
	case t.StartTicks != 0:
		if st.startTicks != t.StartTicks {
			return "pid now belongs to another process", nil
		}
	case t.CreateTime != 0:
		p := &process.Process{Pid: int32(h.pid)}
		ct, err := p.CreateTimeWithContext(psContext(ctx, h.proc))
		if err != nil {
			return "exited", nil
		}
		if d := ct - t.CreateTime; d < -1000 || d > 1000 {
			return "pid now belongs to another process", nil
		}
	default:
		return "", fmt.Errorf("pid %d: the undo has neither start_ticks nor create_time to recognise the process by", h.pid)
	}
	h.startTicks = st.startTicks
	return "", nil
}

func (h *handle) signal(sig unix.Signal) error {
	var err error
	if h.fd >= 0 {
		err = unix.PidfdSendSignal(h.fd, sig, nil, 0)
	} else {
		err = unix.Kill(h.pid, sig)
	}
	if errors.Is(err, unix.ESRCH) {
		return errGone
	}
	if err != nil {
		return fmt.Errorf("send %s to pid %d: %w", unix.SignalName(sig), h.pid, err)
	}
	return nil
}

// exited looks without waiting.
func (h *handle) exited() bool {
	if h.fd >= 0 {
		fds := []unix.PollFd{{Fd: int32(h.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		return err == nil && n > 0
	}
	st, err := readStat(h.proc, h.pid)
	return err != nil || st.gone() || st.startTicks != h.startTicks
}

func (h *handle) state() byte {
	st, err := readStat(h.proc, h.pid)
	if err != nil || st.startTicks != h.startTicks {
		return 'X'
	}
	return st.state
}

func (h *handle) close() {
	if h.fd >= 0 {
		_ = unix.Close(h.fd)
		h.fd = -1
	}
}

// pollEvery bounds each wait, so a cancelled context or a passed deadline is noticed soon.
const pollEvery = 10 * time.Millisecond

// waitGone waits until every non-nil handle whose goneAt is zero has exited, the deadline
// has passed or ctx is done, and records when each one was seen to exit. With pidfds the
// exit is seen at once (poll wakes up); without, within pollEvery.
func waitGone(ctx context.Context, hs []*handle, goneAt []time.Time, deadline time.Time) {
	for {
		var fds []unix.PollFd
		var idx []int
		pending := false
		for i, h := range hs {
			if h == nil || !goneAt[i].IsZero() {
				continue
			}
			if h.fd < 0 {
				if h.exited() {
					goneAt[i] = time.Now()
					continue
				}
			} else {
				fds = append(fds, unix.PollFd{Fd: int32(h.fd), Events: unix.POLLIN})
				idx = append(idx, i)
			}
			pending = true
		}
		left := time.Until(deadline)
		if !pending || left <= 0 || ctx.Err() != nil {
			return
		}
		wait := min(left, pollEvery)
		if len(fds) == 0 {
			time.Sleep(wait)
			continue
		}
		n, err := unix.Poll(fds, int((wait+time.Millisecond-1)/time.Millisecond))
		if err != nil && !errors.Is(err, unix.EINTR) {
			time.Sleep(wait) // not expected; do not spin
		}
		if err != nil || n == 0 {
			continue
		}
		now := time.Now()
		for j, fd := range fds {
			if fd.Revents != 0 {
				goneAt[idx[j]] = now
			}
		}
	}
}
