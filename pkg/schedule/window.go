package schedule

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
)

// maxMerge bounds how many back-to-back activations OpenAt follows to find where an open
// period ends. Windows whose activations overlap forever ("* * * * *" for 1h) would otherwise
// loop without end; past the bound, the reported end is a lower bound.
const maxMerge = 1000

// Window is a named cron expression plus a duration: open from each activation for Duration.
// Duration is elapsed time, not wall-clock time: a window opening at 01:00 for 4h on a
// spring-forward night closes at 06:00 local time, four real hours later.
type Window struct {
	Name     string
	Schedule cron.Schedule
	Duration time.Duration
}

// OpenAt reports whether the window is open at t, and if so until when (exclusive: the window
// is closed at until). Each activation opens [a, a+Duration); overlapping or touching periods
// count as one, so until is the end of the whole contiguous open period (looking at most
// maxMerge activations ahead).
//
// It needs no history: the window is open at t exactly when the first activation after
// t-Duration is not after t, so a window that opened before the agent started is open.
//
// "@every" (cron.ConstantDelaySchedule) has no phase of its own — cron counts it from when an
// entry is added — which would make a window's open periods depend on when the agent started.
// For windows it is therefore anchored to a fixed grid: activations at every multiple of the
// delay since Go's zero time (0001-01-01T00:00:00Z). An interval that divides a day thus lines
// up with midnight UTC: "@every 6h" opens at 00:00, 06:00, 12:00 and 18:00 UTC, the same
// before and after a restart.
func (w Window) OpenAt(t time.Time) (open bool, until time.Time) {
	if w.Schedule == nil || w.Duration <= 0 {
		return false, time.Time{}
	}
	start := w.activationAfter(t.Add(-w.Duration))
	if start.IsZero() || start.After(t) {
		return false, time.Time{}
	}
	until = start.Add(w.Duration)
	for range maxMerge {
		next := w.activationAfter(start)
		// next == until still counts: the window closes and reopens at the same instant.
		if next.IsZero() || next.After(until) || !next.After(start) {
			break
		}
		start, until = next, next.Add(w.Duration)
	}
	return true, until
}

// activationAfter returns the first activation strictly after t, or the zero time if none.
func (w Window) activationAfter(t time.Time) time.Time {
	switch s := w.Schedule.(type) {
	case cron.ConstantDelaySchedule:
		return everyAfter(s.Delay, t)
	case *cron.ConstantDelaySchedule:
		return everyAfter(s.Delay, t)
	}
	return w.Schedule.Next(t)
}

func everyAfter(delay time.Duration, t time.Time) time.Time {
	if delay <= 0 {
		return time.Time{}
	}
	// Truncate works on absolute time since the zero time, independent of t's location.
	return t.Truncate(delay).Add(delay)
}

// Calendar holds the named windows and blackouts of a config. A nil *Calendar has no
// blackouts and no named windows.
type Calendar struct {
	Windows   map[string]Window
	Blackouts []Window
}

// Blackout reports whether a blackout is open at t, with its name and the end of its open
// period. When several are open it returns the one that stays open longest (the first of them
// in Blackouts on a tie), because "nothing fires until X" is what a reader of a skip reason
// needs to know.
func (c *Calendar) Blackout(t time.Time) (name string, until time.Time, ok bool) {
	if c == nil {
		return "", time.Time{}, false
	}
	for _, b := range c.Blackouts {
		if open, u := b.OpenAt(t); open && (!ok || u.After(until)) {
			name, until, ok = b.Name, u, true
		}
	}
	return name, until, ok
}

// InWindow reports whether the named window is open at t. The empty name means "no window"
// and is always open; an unknown name is never open, so a typo that slipped past validation
// fails safe (no chaos) rather than open.
func (c *Calendar) InWindow(name string, t time.Time) bool {
	if name == "" {
		return true
	}
	if c == nil {
		return false
	}
	w, ok := c.Windows[name]
	if !ok {
		return false
	}
	open, _ := w.OpenAt(t)
	return open
}

// Closed reports why a scheduled fire of an experiment bound to window (empty: none) would not
// fire at t: "blackout" or "window", with a detail for people, or "" if the calendar lets it
// fire. It is the one place these rules live: the runner's checks and `chaoscron next` both
// call it, so the preview cannot drift from what the agent does. Manual fires ignore windows
// but not blackouts; pass the empty window for them.
func (c *Calendar) Closed(window string, t time.Time) (reason, detail string) {
	if name, until, ok := c.Blackout(t); ok {
		return "blackout", fmt.Sprintf("blackout %s is open until %s", name, until.Format(time.RFC3339))
	}
	if window != "" && !c.InWindow(window, t) {
		return "window", fmt.Sprintf("window %s is closed", window)
	}
	return "", ""
}
