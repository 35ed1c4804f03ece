package schedule

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
)

var jan1 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func mustLoc(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return loc
}

func mustParse(t testing.TB, expr string, loc *time.Location) cron.Schedule {
	t.Helper()
	s, err := Parse(expr, loc)
	if err != nil {
		t.Fatalf("Parse(%q): %v", expr, err)
	}
	return s
}

func rfc3339(t testing.TB, ss ...string) []time.Time {
	t.Helper()
	out := make([]time.Time, len(ss))
	for i, s := range ss {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatalf("bad test time %q: %v", s, err)
		}
		out[i] = v
	}
	return out
}

// equalInstants compares instants, not locations, and reports both lists in RFC3339.
func equalInstants(t *testing.T, got, want []time.Time) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = got[i].Equal(want[i])
	}
	if !ok {
		t.Errorf("got  %s\nwant %s", fmtTimes(got), fmtTimes(want))
	}
}

func fmtTimes(ts []time.Time) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = t.Format(time.RFC3339)
	}
	return "[" + strings.Join(s, " ") + "]"
}

func TestNext(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	tokyo := mustLoc(t, "Asia/Tokyo")
	tests := []struct {
		name string
		expr string
		loc  *time.Location
		from time.Time
		want []string
	}{
		{"six fields every 15 seconds", "*/15 * * * * *", time.UTC, jan1,
			[]string{"2026-01-01T00:00:15Z", "2026-01-01T00:00:30Z", "2026-01-01T00:00:45Z"}},
		{"five fields every 5 minutes", "*/5 * * * *", time.UTC, jan1,
			[]string{"2026-01-01T00:05:00Z", "2026-01-01T00:10:00Z", "2026-01-01T00:15:00Z"}},
		{"strictly after an activation", "0 * * * *", time.UTC, time.Date(2026, 1, 1, 1, 0, 0, 0, time.UTC),
			[]string{"2026-01-01T02:00:00Z", "2026-01-01T03:00:00Z"}},
		{"sub-second from rounds up", "* * * * * *", time.UTC, jan1.Add(500 * time.Millisecond),
			[]string{"2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z"}},
		{"@hourly", "@hourly", time.UTC, jan1.Add(30 * time.Minute),
			[]string{"2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z"}},
		{"@daily", "@daily", time.UTC, jan1,
			[]string{"2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"}},
		{"@midnight", "@midnight", time.UTC, jan1.Add(time.Hour),
			[]string{"2026-01-02T00:00:00Z"}},
		{"@weekly is Sunday midnight", "@weekly", time.UTC, jan1, // 2026-01-01 is a Thursday
			[]string{"2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z"}},
		{"@monthly", "@monthly", time.UTC, jan1,
			[]string{"2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"}},
		{"@yearly", "@yearly", time.UTC, jan1,
			[]string{"2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"}},
		{"@annually", "@annually", time.UTC, jan1,
			[]string{"2027-01-01T00:00:00Z"}},
		{"@every counts from the from time", "@every 90s", time.UTC, jan1.Add(7 * time.Second),
			[]string{"2026-01-01T00:01:37Z", "2026-01-01T00:03:07Z"}},
		{"@every with a compound duration", "@every 1h30m", time.UTC, jan1,
			[]string{"2026-01-01T01:30:00Z", "2026-01-01T03:00:00Z"}},
		{"loc is honoured", "0 9 * * *", tokyo, jan1, // 09:00 JST = 00:00 UTC
			[]string{"2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"}},
		{"nil loc is UTC", "0 9 * * *", nil, jan1,
			[]string{"2026-01-01T09:00:00Z"}},
		{"CRON_TZ prefix overrides loc", "CRON_TZ=America/New_York 0 9 * * *", tokyo, jan1, // EST = UTC-5
			[]string{"2026-01-01T14:00:00Z", "2026-01-02T14:00:00Z"}},
		{"TZ prefix", "TZ=America/New_York 0 9 * * *", time.UTC, jan1,
			[]string{"2026-01-01T14:00:00Z"}},
		{"prefix with a descriptor", "CRON_TZ=Asia/Tokyo @daily", time.UTC, jan1,
			[]string{"2026-01-01T15:00:00Z", "2026-01-02T15:00:00Z"}},
		{"prefix and extra blanks", "  CRON_TZ=Asia/Tokyo \t 0  9 * *   * ", time.UTC, jan1,
			[]string{"2026-01-02T00:00:00Z"}},
		{"names for month and weekday", "0 12 * JAN-MAR MON", time.UTC, jan1,
			[]string{"2026-01-05T12:00:00Z", "2026-01-12T12:00:00Z"}},

		// Month ends: day 31 only exists in some months, and robfig skips the others (it does
		// not clamp to the last day).
		{"day 31 skips 30-day months and February", "0 0 31 * *", time.UTC, jan1,
			[]string{"2026-01-31T00:00:00Z", "2026-03-31T00:00:00Z", "2026-05-31T00:00:00Z",
				"2026-07-31T00:00:00Z", "2026-08-31T00:00:00Z", "2026-10-31T00:00:00Z"}},
		{"29 February waits for a leap year", "0 0 29 2 *", time.UTC, jan1,
			[]string{"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"}},

		// Day-of-month and day-of-week both restricted: either matches (Vixie cron's OR), so
		// "13 * FRI" is every 13th and every Friday, not Friday the 13th.
		{"dom and dow restricted match either", "0 0 13 * FRI", time.UTC, jan1,
			[]string{"2026-01-02T00:00:00Z", "2026-01-09T00:00:00Z", "2026-01-13T00:00:00Z", // 13th is a Tuesday
				"2026-01-16T00:00:00Z"}},
		{"1-7 with MON is not the first Monday", "0 0 1-7 * MON", time.UTC, jan1.Add(-time.Hour),
			[]string{"2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z",
				"2026-01-04T00:00:00Z", "2026-01-05T00:00:00Z", "2026-01-06T00:00:00Z",
				"2026-01-07T00:00:00Z", "2026-01-12T00:00:00Z"}},
		{"dom star with dow restricted is dow only", "0 0 * * FRI", time.UTC, jan1,
			[]string{"2026-01-02T00:00:00Z", "2026-01-09T00:00:00Z", "2026-01-16T00:00:00Z"}},
		{"dom restricted with dow star is dom only", "0 0 13 * *", time.UTC, jan1,
			[]string{"2026-01-13T00:00:00Z", "2026-02-13T00:00:00Z"}},

		// Daylight saving, Europe/Berlin, 2026. Spring forward: 29 March 02:00 CET becomes
		// 03:00 CEST. Fall back: 25 October 03:00 CEST becomes 02:00 CET.
		{"DST spring forward skips a time that does not exist", "30 2 * * *", berlin,
			time.Date(2026, 3, 28, 12, 0, 0, 0, berlin),
			[]string{"2026-03-30T02:30:00+02:00", "2026-03-31T02:30:00+02:00"}},
		{"DST spring forward keeps 01:30", "30 1 * * *", berlin,
			time.Date(2026, 3, 28, 12, 0, 0, 0, berlin),
			[]string{"2026-03-29T01:30:00+01:00", "2026-03-30T01:30:00+02:00"}},
		{"DST spring forward keeps 03:00", "0 3 * * *", berlin,
			time.Date(2026, 3, 28, 12, 0, 0, 0, berlin),
			[]string{"2026-03-29T03:00:00+02:00", "2026-03-30T03:00:00+02:00"}},
		// The hour 02:00-03:00 happens twice, and robfig fires in both: 02:30 CEST and, one
		// hour later, 02:30 CET. Kept deliberately (see doc.go): the agent and `next` agree.
		{"DST fall back runs 02:30 twice", "30 2 * * *", berlin,
			time.Date(2026, 10, 24, 12, 0, 0, 0, berlin),
			[]string{"2026-10-25T02:30:00+02:00", "2026-10-25T02:30:00+01:00", "2026-10-26T02:30:00+01:00"}},
		{"DST fall back runs 01:30 once", "30 1 * * *", berlin,
			time.Date(2026, 10, 24, 12, 0, 0, 0, berlin),
			[]string{"2026-10-25T01:30:00+02:00", "2026-10-26T01:30:00+01:00"}},
		{"DST fall back hourly fires in both 02:00 hours", "0 * * * *", berlin,
			time.Date(2026, 10, 25, 1, 30, 0, 0, berlin),
			[]string{"2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"}},
		{"@every ignores DST", "@every 1h", berlin,
			time.Date(2026, 3, 29, 1, 0, 0, 0, berlin),
			[]string{"2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := mustParse(t, tc.expr, tc.loc)
			equalInstants(t, Next(s, tc.from, len(tc.want)), rfc3339(t, tc.want...))
		})
	}
}

func TestNextReturnsFromLocation(t *testing.T) {
	ny := mustLoc(t, "America/New_York")
	got := Next(mustParse(t, "0 9 * * *", time.UTC), jan1.In(ny), 1)
	if len(got) != 1 || got[0].Location() != ny {
		t.Fatalf("got %v, want one time in %s", got, ny)
	}
}

func TestNextEdges(t *testing.T) {
	s := mustParse(t, "@hourly", time.UTC)
	tests := []struct {
		name  string
		sched cron.Schedule
		n     int
		want  int
	}{
		{"zero count", s, 0, 0},
		{"negative count", s, -3, 0},
		{"nil schedule", nil, 3, 0},
		{"schedule that never fires", never{}, 3, 0},
		{"schedule that does not advance", stuck{}, 3, 0},
		{"large count", s, 1000, 1000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Next(tc.sched, jan1, tc.n); len(got) != tc.want {
				t.Fatalf("got %d times, want %d", len(got), tc.want)
			}
		})
	}
}

// stuck is a broken schedule that returns its input; Next must not loop on it.
type stuck struct{}

func (stuck) Next(t time.Time) time.Time { return t }

func TestFiveAndSixFieldsAgree(t *testing.T) {
	pairs := [][2]string{
		{"*/5 * * * *", "0 */5 * * * *"},
		{"0 22 * * *", "0 0 22 * * *"},
		{"15 9 * * MON-FRI", "0 15 9 * * MON-FRI"},
		{"0 0 31 * *", "0 0 0 31 * *"},
	}
	for _, p := range pairs {
		t.Run(p[0], func(t *testing.T) {
			five, six := mustParse(t, p[0], time.UTC), mustParse(t, p[1], time.UTC)
			equalInstants(t, Next(five, jan1, 50), Next(six, jan1, 50))
		})
	}
}

// TestParseSetsZone checks the zone decision lands in the schedule itself, and that time.Local
// never does: robfig would evaluate such a schedule in the from-time's zone instead.
func TestParseSetsZone(t *testing.T) {
	ny := mustLoc(t, "America/New_York")
	tests := []struct {
		name     string
		expr     string
		loc      *time.Location
		wantName string
	}{
		{"default zone", "* * * * *", ny, "America/New_York"},
		{"nil is UTC", "* * * * *", nil, "UTC"},
		{"prefix wins", "CRON_TZ=Asia/Tokyo * * * * *", ny, "Asia/Tokyo"},
		{"Local becomes a concrete zone", "* * * * *", time.Local, "Local"},
		{"Local through a prefix", "TZ=Local * * * * *", time.UTC, "Local"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ss, ok := mustParse(t, tc.expr, tc.loc).(*cron.SpecSchedule)
			if !ok {
				t.Fatal("not a *cron.SpecSchedule")
			}
			if ss.Location == time.Local {
				t.Fatal("schedule carries time.Local")
			}
			if ss.Location.String() != tc.wantName {
				t.Fatalf("location %s, want %s", ss.Location, tc.wantName)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		expr string
		want []string // substrings of the message, case-sensitive
	}{
		{"empty", "", []string{"empty expression", "expected 5 fields"}},
		{"blank", "  \t ", []string{"empty expression"}},
		{"TZ prefix alone", "TZ=UTC", []string{"TZ=UTC must be followed by a cron expression"}},
		{"CRON_TZ prefix alone", "CRON_TZ=Europe/Berlin  ", []string{"must be followed by a cron expression"}},
		{"prefix without zone", "TZ= * * * * *", []string{"no zone name"}},
		{"two prefixes", "TZ=UTC CRON_TZ=UTC * * * * *", []string{"more than one time zone prefix"}},
		{"unknown zone", "CRON_TZ=Nowhere/City * * * * *", []string{`unknown time zone "Nowhere/City"`}},
		{"zone path traversal", "TZ=../../etc/passwd * * * * *", []string{"unknown time zone"}},
		{"minute out of range", "61 * * * *", []string{`minute field "61"`, "allowed: 0-59", "above maximum"}},
		{"second out of range", "60 * * * * *", []string{`second field "60"`}},
		{"hour out of range", "0 24 * * *", []string{`hour field "24"`, "0-23"}},
		{"day-of-month zero", "0 0 0 * *", []string{`day-of-month field "0"`, "below minimum"}},
		{"month name", "0 0 1 FOO *", []string{`month field "FOO"`, "JAN-DEC"}},
		{"weekday 7", "0 0 * * 7", []string{`day-of-week field "7"`, "0-6 or SUN-SAT"}},
		{"backwards range", "0 0 * * 5-1", []string{`day-of-week field "5-1"`, "beyond end of range"}},
		{"zero step", "*/0 * * * *", []string{`minute field "*/0"`, "step"}},
		{"too few fields", "* * *", []string{"found 3 fields", "expected 5 fields"}},
		{"too many fields", "* * * * * * *", []string{"found 7 fields"}},
		{"last day of month", "0 0 L * *", []string{`day-of-month field "L"`, "L, W and # are not supported"}},
		{"nearest weekday", "0 0 15W * *", []string{"L, W and # are not supported"}},
		{"nth weekday", "0 0 * * MON#2", []string{`day-of-week field "MON#2"`, "not supported"}},
		{"never fires", "0 0 30 2 *", []string{"never fires"}},
		{"@every below a second", "@every 500ms", []string{"below the 1s minimum"}},
		{"@every zero", "@every 0s", []string{"below the 1s minimum"}},
		{"@every negative", "@every -1s", []string{"@every -1s is below the 1s minimum"}},
		{"@every fraction", "@every 1500ms", []string{"not a whole number of seconds", "truncate it to 1s"}},
		{"@every garbage", "@every soon", []string{`@every duration "soon"`}},
		{"@every without duration", "@every", []string{"exactly one duration"}},
		{"@every two durations", "@every 1s 2s", []string{"exactly one duration"}},
		{"unknown descriptor", "@bogus", []string{`unknown descriptor "@bogus"`, "@hourly"}},
		{"descriptor with arguments", "@daily 5", []string{"takes no arguments"}},
		{"descriptor is case-sensitive", "@Daily", []string{"unknown descriptor"}},
		{"garbage", "hello world", []string{"found 2 fields"}},
		{"garbage five fields", "a b c d e", []string{`minute field "a"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse(tc.expr, time.UTC)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want an error", tc.expr, s)
			}
			if s != nil {
				t.Errorf("schedule %v returned with the error", s)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %q does not wrap ErrInvalid", err)
			}
			if errors.Is(err, errPanic) {
				t.Errorf("error %q came from a recovered panic; check for it up front", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, `"`+tc.expr+`"`) && !strings.Contains(msg, strings.TrimSpace(tc.expr)) {
				t.Errorf("message %q does not quote the expression", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %q", msg, w)
				}
			}
		})
	}
}

// TestRobfigStillPanics pins the reason for the recover() in Parse: if a robfig upgrade fixes
// it, the test says so, and the backstop stays harmless.
func TestRobfigStillPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Log("robfig/cron no longer panics on \"TZ=UTC\"")
		}
	}()
	_, _ = parser.Parse("TZ=UTC")
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "TZ=UTC", "CRON_TZ=Nowhere/City * * * * *", "61 * * * *", "* * *", "@every 500ms",
		"@every -1s", "@bogus", "*/15 * * * * *", "*/5 * * * *", "0 */5 * * * *", "@hourly",
		"@every 90s", "CRON_TZ=America/New_York 0 9 * * *", "TZ=Europe/Berlin 30 2 * * *",
		"0 0 31 * *", "0 0 L * *", "0 0 13 * FRI", "0 0 30 2 *", "TZ= ", "TZ=UTC\t@daily",
		"1-5/2,7,*/3 0-23/4 1,15 JAN-DEC/2 MON-FRI", "0-59/9223372036854775807 * * * *",
	} {
		f.Add(s)
	}
	from := time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, expr string) {
		s, err := Parse(expr, time.UTC)
		if err != nil {
			if s != nil {
				t.Fatalf("Parse(%q) returned a schedule and an error", expr)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q): error %q does not wrap ErrInvalid", expr, err)
			}
			if errors.Is(err, errPanic) {
				t.Fatalf("Parse(%q) reached the recover backstop: %v", expr, err)
			}
			return
		}
		if s == nil {
			t.Fatalf("Parse(%q) returned neither schedule nor error", expr)
		}
		ts := Next(s, from, 3)
		if len(ts) == 0 {
			t.Fatalf("Parse(%q) accepted a schedule that never fires", expr)
		}
		for i, tm := range ts {
			if tm.Nanosecond() != 0 {
				t.Fatalf("Parse(%q): activation %s is not on a whole second", expr, tm)
			}
			if i > 0 && !tm.After(ts[i-1]) {
				t.Fatalf("Parse(%q): activations not increasing: %v", expr, ts)
			}
		}
		// A short duration keeps the merge loop of an always-open window cheap.
		_, _ = Window{Name: "fuzz", Schedule: s, Duration: 90 * time.Second}.OpenAt(from)
	})
}

func BenchmarkParse(b *testing.B) {
	for _, expr := range []string{"*/5 * * * *", "CRON_TZ=Europe/Berlin 0 30 9 * * MON-FRI", "@every 90s"} {
		b.Run(expr, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(expr, time.UTC); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
