package schedule

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/robfig/cron/v3"
)

// ErrInvalid is wrapped by every error Parse returns, so callers (config validation) can tell a
// bad expression from other failures with errors.Is.
var ErrInvalid = errors.New("invalid schedule")

// errPanic marks an error that came out of the recover() backstop. It is unexported because
// callers need not care; the fuzz test does: every input that reaches it is a case the
// up-front checks should have caught with a better message.
var errPanic = errors.New("cron parser panicked")

// parser accepts 5 fields (minute first) or 6 (second first) plus descriptors. Seconds are the
// optional field rather than day-of-week because "*/5 * * * *" must keep its crontab meaning.
var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

const expectedForm = "expected 5 fields (minute hour day-of-month month day-of-week), " +
	"6 fields (second first), or a descriptor such as @hourly or @every 5m"

// fieldNames and fieldRanges describe the 6-field form; a 5-field expression uses them from
// index 1. They only decorate error messages.
var (
	fieldNames  = [...]string{"second", "minute", "hour", "day-of-month", "month", "day-of-week"}
	fieldRanges = [...]string{"0-59", "0-59", "0-23", "1-31", "1-12 or JAN-DEC", "0-6 or SUN-SAT"}
)

// quartzSyntax recognises Quartz/Jenkins extensions users often try (L, W, #) so the error can
// say they are unsupported instead of only "failed to parse int".
var quartzSyntax = regexp.MustCompile(`(?i)^(l|lw|l-\d+|\d+[lw]|\w+#\d+)$`)

// Parse parses a user cron expression: 5 fields (minute first) or 6 (seconds first),
// descriptors (@hourly, @daily, @weekly, @monthly, @yearly/@annually, @midnight,
// @every 90s), and CRON_TZ=Zone / TZ=Zone prefixes. loc is the default zone (agent.timezone);
// nil means UTC. A prefix overrides loc. "@every" has no zone: it is a plain interval.
//
// Every error wraps ErrInvalid and says what was expected and which part is wrong. Parse never
// panics. An "@every" interval must be a whole number of seconds and at least 1s, because
// cron silently truncates anything finer. A valid expression that can never fire (30 February)
// is rejected too, since it would otherwise schedule nothing without a word.
func Parse(expr string, loc *time.Location) (s cron.Schedule, err error) {
	// The up-front checks below cover the parser panics known in v3.0.1; this is the backstop
	// for ones nobody has found yet, because a config typo must never take the agent down.
	defer func() {
		if r := recover(); r != nil {
			s = nil
			err = fmt.Errorf("%w %q: %w: %v", ErrInvalid, expr, errPanic, r)
		}
	}()
	s, err = parse(expr, loc)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrInvalid, expr, err)
	}
	return s, nil
}

func parse(expr string, loc *time.Location) (cron.Schedule, error) {
	spec := strings.TrimSpace(expr)
	if spec == "" {
		return nil, fmt.Errorf("empty expression; %s", expectedForm)
	}
	if loc == nil {
		loc = time.UTC
	}
	spec, loc, err := zonePrefix(spec, loc)
	if err != nil {
		return nil, err
	}
	loc = concrete(loc)

	var sched cron.Schedule
	if strings.HasPrefix(spec, "@") {
		sched, err = parseDescriptor(spec)
	} else {
		sched, err = parseFields(spec)
	}
	if err != nil {
		return nil, err
	}
	if ss, ok := sched.(*cron.SpecSchedule); ok {
		// The parser only saw the expression without its prefix, so it set time.Local; the zone
		// decided above is the one that counts.
		ss.Location = loc
		// From 2000 every valid combination recurs within robfig's five-year search (29
		// February included), so a zero here means "never", not "not soon".
		if ss.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, loc)).IsZero() {
			return nil, errors.New("never fires: no date matches the day-of-month and month fields")
		}
	}
	return sched, nil
}

// zonePrefix strips a CRON_TZ= or TZ= prefix and loads its zone. robfig does the same but
// slices with the index of a space that may not exist, which panics on "TZ=UTC".
func zonePrefix(spec string, loc *time.Location) (string, *time.Location, error) {
	var name string
	switch {
	case strings.HasPrefix(spec, "CRON_TZ="):
		name = strings.TrimPrefix(spec, "CRON_TZ=")
	case strings.HasPrefix(spec, "TZ="):
		name = strings.TrimPrefix(spec, "TZ=")
	default:
		return spec, loc, nil
	}
	prefix := spec[:len(spec)-len(name)]
	rest := ""
	if i := strings.IndexFunc(name, unicode.IsSpace); i >= 0 {
		name, rest = name[:i], strings.TrimSpace(name[i:])
	}
	if name == "" {
		return "", nil, fmt.Errorf("%s prefix has no zone name; expected e.g. %sEurope/Berlin", prefix, prefix)
	}
	if rest == "" {
		return "", nil, fmt.Errorf("time zone prefix %s%s must be followed by a cron expression; %s", prefix, name, expectedForm)
	}
	if strings.HasPrefix(rest, "CRON_TZ=") || strings.HasPrefix(rest, "TZ=") {
		return "", nil, errors.New("more than one time zone prefix")
	}
	z, err := time.LoadLocation(name)
	if err != nil {
		return "", nil, fmt.Errorf("unknown time zone %q (expected an IANA name such as America/New_York): %w", name, err)
	}
	return rest, z, nil
}

// parseDescriptor handles "@..." forms. "@every" is parsed here rather than by robfig because
// robfig rounds sub-second intervals up or down without saying so, and needs exactly one space.
func parseDescriptor(spec string) (cron.Schedule, error) {
	f := strings.Fields(spec)
	if f[0] == "@every" {
		if len(f) != 2 {
			return nil, errors.New("@every takes exactly one duration, e.g. @every 90s")
		}
		d, err := time.ParseDuration(f[1])
		if err != nil {
			return nil, fmt.Errorf("@every duration %q: %w", f[1], err)
		}
		if d < time.Second {
			return nil, fmt.Errorf("@every %s is below the 1s minimum (cron has one-second resolution)", f[1])
		}
		if d%time.Second != 0 {
			return nil, fmt.Errorf("@every %s is not a whole number of seconds (cron would silently truncate it to %s)", f[1], d.Truncate(time.Second))
		}
		return cron.Every(d), nil
	}
	if len(f) != 1 {
		return nil, fmt.Errorf("descriptor %s takes no arguments, found %q", f[0], strings.Join(f[1:], " "))
	}
	switch f[0] {
	case "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly":
		return parser.Parse(f[0])
	}
	return nil, fmt.Errorf("unknown descriptor %q; expected one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or @every <duration>", f[0])
}

// parseFields handles the 5- and 6-field forms. On error it finds which field is wrong, because
// robfig's own messages ("failed to parse int from L") do not say.
func parseFields(spec string) (cron.Schedule, error) {
	fields := strings.Fields(spec)
	if n := len(fields); n != 5 && n != 6 {
		return nil, fmt.Errorf("found %d fields; %s", n, expectedForm)
	}
	// Re-joined with single spaces so the parser sees exactly the fields counted above.
	s, err := parser.Parse(strings.Join(fields, " "))
	if err == nil {
		return s, nil
	}
	offset := 6 - len(fields)
	for i, f := range fields {
		probe := []string{"*", "*", "*", "*", "*", "*"}[offset:]
		probe[i] = f
		if _, perr := parser.Parse(strings.Join(probe, " ")); perr != nil {
			name, allowed := fieldNames[i+offset], fieldRanges[i+offset]
			if quartzSyntax.MatchString(f) {
				return nil, fmt.Errorf("%s field %q: L, W and # are not supported (allowed: %s, lists, ranges, steps, *): %w", name, f, allowed, perr)
			}
			return nil, fmt.Errorf("%s field %q (allowed: %s): %w", name, f, allowed, perr)
		}
	}
	return nil, err
}

// concrete returns loc, except that time.Local is replaced by an equal zone behind another
// pointer: robfig evaluates a SpecSchedule whose Location == time.Local in the zone of the time
// passed to Next, so "agent.timezone: Local" would otherwise mean UTC for a UTC from-time.
func concrete(loc *time.Location) *time.Location {
	if loc == time.Local {
		return localCopy()
	}
	return loc
}

var localCopy = sync.OnceValue(func() *time.Location {
	// time.Local loads lazily on first use; force that before copying, or the copy is empty.
	_, _ = time.Now().In(time.Local).Zone()
	l := *time.Local
	return &l
})

// Next returns the next n activation times strictly after from, in from's location. It stops
// early if the schedule has no further activation (or, defensively, one that is not later
// than the previous).
//
// For an "@every" schedule the times count from from, which is also how the Scheduler treats
// it: an @every entry fires at the interval after it was added, not on a fixed grid.
func Next(s cron.Schedule, from time.Time, n int) []time.Time {
	if s == nil || n <= 0 {
		return nil
	}
	out := make([]time.Time, 0, n)
	t := from
	for range n {
		next := s.Next(t)
		if next.IsZero() || !next.After(t) {
			break
		}
		out = append(out, next)
		t = next
	}
	return out
}
