package schedule

import (
	"testing"
	"time"
)

func TestWindowOpenAt(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	utc := func(s string) time.Time { return rfc3339(t, s)[0] }
	type check struct {
		at    string // RFC3339
		open  bool
		until string // RFC3339, when open
	}
	tests := []struct {
		name   string
		expr   string
		loc    *time.Location
		dur    time.Duration
		checks []check
	}{
		{"across midnight", "0 22 * * *", time.UTC, 4 * time.Hour, []check{
			{"2026-01-01T21:59:59Z", false, ""},
			{"2026-01-01T22:00:00Z", true, "2026-01-02T02:00:00Z"},
			{"2026-01-02T01:00:00Z", true, "2026-01-02T02:00:00Z"},
			{"2026-01-02T01:59:59.999Z", true, "2026-01-02T02:00:00Z"},
			{"2026-01-02T02:00:00Z", false, ""}, // the end is exclusive
			{"2026-01-02T02:01:00Z", false, ""},
		}},
		{"six-field form agrees", "0 0 22 * * *", time.UTC, 4 * time.Hour, []check{
			{"2026-01-02T01:00:00Z", true, "2026-01-02T02:00:00Z"},
			{"2026-01-02T02:01:00Z", false, ""},
		}},
		{"across month end", "0 12 28 2 *", time.UTC, 48 * time.Hour, []check{ // 2026 is not a leap year
			{"2026-02-28T11:59:59Z", false, ""},
			{"2026-03-01T12:00:00Z", true, "2026-03-02T12:00:00Z"},
			{"2026-03-02T12:00:00Z", false, ""},
		}},
		{"across year end", "0 20 31 12 *", time.UTC, 8 * time.Hour, []check{
			{"2027-01-01T03:59:00Z", true, "2027-01-01T04:00:00Z"},
			{"2027-01-01T04:00:00Z", false, ""},
		}},
		// Duration is elapsed time: 01:00 CET + 4h on the spring-forward night is 06:00 CEST.
		{"across DST spring forward", "0 1 * * *", berlin, 4 * time.Hour, []check{
			{"2026-03-29T05:30:00+02:00", true, "2026-03-29T06:00:00+02:00"},
			{"2026-03-29T06:00:00+02:00", false, ""},
		}},
		// 01:00 CEST + 4h on the fall-back night is 04:00 CET.
		{"across DST fall back", "0 1 * * *", berlin, 4 * time.Hour, []check{
			{"2026-10-25T03:30:00+01:00", true, "2026-10-25T04:00:00+01:00"},
			{"2026-10-25T04:00:00+01:00", false, ""},
		}},
		// 02:30 does not exist on 29 March, so that day's window never opens.
		{"skipped by DST spring forward", "30 2 * * *", berlin, time.Hour, []check{
			{"2026-03-28T03:00:00+01:00", true, "2026-03-28T03:30:00+01:00"},
			{"2026-03-29T03:00:00+02:00", false, ""},
			{"2026-03-30T03:00:00+02:00", true, "2026-03-30T03:30:00+02:00"},
		}},
		// Opened Wednesday 09:00, long before the agent looks at 15:00: open, no history kept.
		{"opened before agent start", "0 9 * * MON-FRI", time.UTC, 8 * time.Hour, []check{
			{"2026-01-07T15:00:00Z", true, "2026-01-07T17:00:00Z"},
			{"2026-01-10T10:00:00Z", false, ""}, // Saturday
		}},
		{"zone of the schedule counts", "CRON_TZ=America/New_York 0 9 * * *", time.UTC, time.Hour, []check{
			{"2026-01-01T09:30:00Z", false, ""},
			{"2026-01-01T14:30:00Z", true, "2026-01-01T15:00:00Z"},
		}},
		// 09:00-10:30 and 10:00-11:30 overlap: one open period until 11:30.
		{"overlapping activations merge", "0 9,10 * * *", time.UTC, 90 * time.Minute, []check{
			{"2026-01-01T09:15:00Z", true, "2026-01-01T11:30:00Z"},
			{"2026-01-01T11:00:00Z", true, "2026-01-01T11:30:00Z"},
		}},
		// 09:00-10:00 and 10:00-11:00 touch: the window never closes in between.
		{"touching activations merge", "0 9,10 * * *", time.UTC, time.Hour, []check{
			{"2026-01-01T09:15:00Z", true, "2026-01-01T11:00:00Z"},
			{"2026-01-01T10:00:00Z", true, "2026-01-01T11:00:00Z"},
		}},
		// "@every" windows sit on a fixed grid from Go's zero time, which for 6h is midnight UTC.
		{"@every is anchored", "@every 6h", time.UTC, time.Hour, []check{
			{"2026-01-01T00:00:00Z", true, "2026-01-01T01:00:00Z"},
			{"2026-01-01T06:30:00Z", true, "2026-01-01T07:00:00Z"},
			{"2026-01-01T07:30:00Z", false, ""},
			{"2026-01-01T05:59:59Z", false, ""},
		}},
		{"@every ignores the zone", "CRON_TZ=Asia/Kolkata @every 24h", time.UTC, time.Hour, []check{
			{"2026-01-01T00:30:00Z", true, "2026-01-01T01:00:00Z"},
		}},
		{"zero duration never opens", "* * * * * *", time.UTC, 0, []check{
			{"2026-01-01T00:00:00Z", false, ""},
		}},
		{"negative duration never opens", "* * * * * *", time.UTC, -time.Hour, []check{
			{"2026-01-01T00:00:00Z", false, ""},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := Window{Name: tc.name, Schedule: mustParse(t, tc.expr, tc.loc), Duration: tc.dur}
			for _, c := range tc.checks {
				open, until := w.OpenAt(utc(c.at))
				if open != c.open {
					t.Errorf("OpenAt(%s) open = %v, want %v", c.at, open, c.open)
					continue
				}
				if !c.open {
					if !until.IsZero() {
						t.Errorf("OpenAt(%s) closed but until = %s", c.at, until)
					}
					continue
				}
				if want := utc(c.until); !until.Equal(want) {
					t.Errorf("OpenAt(%s) until = %s, want %s", c.at, until.Format(time.RFC3339), c.until)
				}
			}
		})
	}
}

// An always-open window has no end to find; OpenAt stops after maxMerge activations and
// reports that as a lower bound.
func TestWindowAlwaysOpenIsBounded(t *testing.T) {
	w := Window{Name: "always", Schedule: mustParse(t, "* * * * *", time.UTC), Duration: time.Hour}
	open, until := w.OpenAt(jan1)
	if !open {
		t.Fatal("closed, want open")
	}
	if want := jan1.Add(maxMerge * time.Minute); until.Before(want) {
		t.Fatalf("until %s, want at least %s", until, want)
	}
}

func TestWindowNilSchedule(t *testing.T) {
	if open, _ := (Window{Name: "x", Duration: time.Hour}).OpenAt(jan1); open {
		t.Fatal("a window without a schedule is open")
	}
}

func TestCalendar(t *testing.T) {
	cal := &Calendar{
		Windows: map[string]Window{
			"business-hours": {Name: "business-hours", Schedule: mustParse(t, "0 9 * * MON-FRI", time.UTC), Duration: 8 * time.Hour},
		},
		Blackouts: []Window{
			{Name: "release-freeze", Schedule: mustParse(t, "0 0 20 12 *", time.UTC), Duration: 336 * time.Hour},
			{Name: "nightly-backup", Schedule: mustParse(t, "0 2 * * *", time.UTC), Duration: time.Hour},
			{Name: "new-year", Schedule: mustParse(t, "0 0 1 1 *", time.UTC), Duration: 2 * time.Hour},
		},
	}
	at := func(s string) time.Time { return rfc3339(t, s)[0] }

	blackouts := []struct {
		name      string
		at        string
		wantName  string
		wantUntil string // "" = none open
	}{
		{"none open", "2026-06-10T12:00:00Z", "", ""},
		{"nightly backup", "2026-06-10T02:30:00Z", "nightly-backup", "2026-06-10T03:00:00Z"},
		{"freeze opened last year", "2027-01-02T12:00:00Z", "release-freeze", "2027-01-03T00:00:00Z"},
		{"longest of several open", "2027-01-01T00:30:00Z", "release-freeze", "2027-01-03T00:00:00Z"},
		{"longest of several open, backup inside freeze", "2026-12-24T02:10:00Z", "release-freeze", "2027-01-03T00:00:00Z"},
	}
	for _, tc := range blackouts {
		t.Run("blackout "+tc.name, func(t *testing.T) {
			name, until, ok := cal.Blackout(at(tc.at))
			if ok != (tc.wantUntil != "") {
				t.Fatalf("ok = %v (%q until %s)", ok, name, until)
			}
			if !ok {
				return
			}
			if name != tc.wantName || !until.Equal(at(tc.wantUntil)) {
				t.Fatalf("got %q until %s, want %q until %s", name, until.Format(time.RFC3339), tc.wantName, tc.wantUntil)
			}
		})
	}

	windows := []struct {
		name   string
		window string
		at     string
		want   bool
	}{
		{"no window is always open", "", "2026-01-03T03:00:00Z", true},
		{"unknown window is closed", "lunch", "2026-01-07T12:00:00Z", false},
		{"open on a weekday", "business-hours", "2026-01-07T12:00:00Z", true},
		{"closed in the evening", "business-hours", "2026-01-07T17:00:00Z", false},
		{"closed at the weekend", "business-hours", "2026-01-10T12:00:00Z", false},
	}
	for _, tc := range windows {
		t.Run("window "+tc.name, func(t *testing.T) {
			if got := cal.InWindow(tc.window, at(tc.at)); got != tc.want {
				t.Fatalf("InWindow(%q, %s) = %v, want %v", tc.window, tc.at, got, tc.want)
			}
		})
	}

	// Closed: blackouts first (they also hold for fires with no window), then the window.
	closed := []struct {
		name, window, at, want string
	}{
		{"open window, no blackout", "business-hours", "2026-06-10T12:00:00Z", ""},
		{"closed window", "business-hours", "2026-06-10T20:00:00Z", "window: window business-hours is closed"},
		{"blackout in a closed window", "business-hours", "2026-06-10T02:30:00Z", "blackout: blackout nightly-backup is open until 2026-06-10T03:00:00Z"},
		{"blackout with no window", "", "2026-06-10T02:30:00Z", "blackout: blackout nightly-backup is open until 2026-06-10T03:00:00Z"},
		{"no window, no blackout", "", "2026-06-10T20:00:00Z", ""},
	}
	for _, tc := range closed {
		t.Run("closed "+tc.name, func(t *testing.T) {
			reason, detail := cal.Closed(tc.window, at(tc.at))
			got := ""
			if reason != "" {
				got = reason + ": " + detail
			}
			if got != tc.want {
				t.Fatalf("Closed(%q, %s) = %q, want %q", tc.window, tc.at, got, tc.want)
			}
		})
	}
}

func TestNilCalendar(t *testing.T) {
	var cal *Calendar
	if _, _, ok := cal.Blackout(jan1); ok {
		t.Error("nil calendar has an open blackout")
	}
	if !cal.InWindow("", jan1) {
		t.Error("nil calendar: no window should be open")
	}
	if cal.InWindow("x", jan1) {
		t.Error("nil calendar: unknown window is open")
	}
}

func BenchmarkWindowOpenAt(b *testing.B) {
	benches := []struct {
		name string
		expr string
		dur  time.Duration
	}{
		{"daily 8h", "0 9 * * MON-FRI", 8 * time.Hour},
		{"freeze 336h", "0 0 20 12 *", 336 * time.Hour},
		{"every 6h", "@every 6h", time.Hour},
	}
	for _, bc := range benches {
		w := Window{Name: bc.name, Schedule: mustParse(b, bc.expr, time.UTC), Duration: bc.dur}
		at := time.Date(2026, 1, 7, 12, 0, 0, 0, time.UTC)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				w.OpenAt(at)
			}
		})
	}
}
