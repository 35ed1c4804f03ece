// Package schedule turns the timing parts of a config into decisions: when an experiment fires
// (cron expressions through robfig/cron/v3), whether a named window or a blackout is open at a
// given instant, whether a probability roll succeeds, and how long a jitter delay lasts.
//
// robfig/cron v3.0.1 is unmaintained and has traps this package closes or pins down:
//
//   - Its parser panics on some input ("TZ=UTC" with nothing after it). Parse validates the
//     time-zone prefix itself and also runs the parser under recover(), so bad user input is an
//     error that wraps ErrInvalid, never a crash.
//   - cron.Cron's run loop (which this package does not use: Scheduler has its own, for
//     punctuality) lets a panicking job kill the process; Scheduler recovers every call.
//   - "@every" silently drops sub-second parts; Parse rejects them instead of changing the
//     meaning of the user's interval.
//   - A schedule whose Location is time.Local is evaluated in the zone of whatever time it is
//     given, not in the machine's zone; Parse never hands out such a schedule.
//   - cron.Cron's Stop waits for running jobs but cancels nothing; Scheduler gives every job a
//     context that Stop cancels, and cancellable jitter waits.
//
// Daylight-saving behaviour is robfig's and is kept, so that `chaoscron next` and the running
// agent always agree: a local time that does not exist on a spring-forward day is skipped (no
// run that day), and a local time that exists twice on a fall-back day runs twice, an hour
// apart. The tests in parse_test.go pin both down for Europe/Berlin.
package schedule
