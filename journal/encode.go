package journal

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// encode returns r as stored: byte for byte what json.Marshal(r) returns, written field by
// field into one buffer. Marshal goes through reflection and allocates for every time and
// raw field; it was a quarter of the memory a fired run allocates, and with 200 runs on a
// tick, the garbage collector's work ran on the CPU the tick's last fires waited for.
// Whatever this writer does not handle exactly as Marshal does (a raw message that Marshal
// would compact or escape, a time outside UTC or years 0–9999) goes to Marshal instead.
func encode(r *Record) ([]byte, error) { return encodeAfter(r, 0) }

// encodeAfter is encode into a buffer whose first head bytes are left for the caller (the
// seal: see seal.go), so that a stored record is still one allocation.
func encodeAfter(r *Record, head int) ([]byte, error) {
	if !fastTime(r.ScheduledAt) || !fastTime(r.StartedAt) || !fastTime(r.AppliedAt) ||
		!fastTime(r.EndedAt) || !fastTime(r.PlannedEnd) || !cleanRaw(r.Params) || !cleanRaw(r.Undo) ||
		r.Slot != nil { // fleet runs: each costs API round trips; Marshal's cost is lost in them
		js, err := json.Marshal(r)
		if err != nil || head == 0 {
			return js, err
		}
		return append(make([]byte, head, head+len(js)), js...), nil
	}
	// The keys and numbers at their longest, strings as they are (escapes may grow them),
	// and 50 bytes for each time present.
	n := head + 224 + len(r.Experiment) + len(r.Fault) + len(r.Params) + len(r.Trigger) + len(r.Undo) +
		len(r.Error) + len(r.Reason) + len(r.Agent.Host) + len(r.Agent.Instance) + len(r.Agent.Version)
	for _, t := range [...]time.Time{r.ScheduledAt, r.StartedAt, r.AppliedAt, r.EndedAt, r.PlannedEnd} {
		if !t.IsZero() {
			n += 50
		}
	}
	b := make([]byte, head, n)
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, r.ID, 10)
	b = append(b, `,"experiment":`...)
	b = appendString(b, r.Experiment)
	b = append(b, `,"fault":`...)
	b = appendString(b, r.Fault)
	if len(r.Params) > 0 {
		b = append(b, `,"params":`...)
		b = append(b, r.Params...)
	}
	b = append(b, `,"trigger":`...)
	b = appendString(b, r.Trigger)
	b = appendTime(b, `,"scheduled_at":`, r.ScheduledAt)
	b = appendTime(b, `,"started_at":`, r.StartedAt)
	b = appendTime(b, `,"applied_at":`, r.AppliedAt)
	b = appendTime(b, `,"ended_at":`, r.EndedAt)
	b = appendTime(b, `,"planned_end":`, r.PlannedEnd)
	b = append(b, `,"status":`...)
	b = appendString(b, string(r.Status))
	b = append(b, `,"cleanup":`...)
	b = appendString(b, string(r.Cleanup))
	if len(r.Undo) > 0 {
		b = append(b, `,"undo":`...)
		b = append(b, r.Undo...)
	}
	if r.Error != "" {
		b = append(b, `,"error":`...)
		b = appendString(b, r.Error)
	}
	if r.Reason != "" {
		b = append(b, `,"reason":`...)
		b = appendString(b, r.Reason)
	}
	b = append(b, `,"dry_run":`...)
	b = strconv.AppendBool(b, r.DryRun)
	b = append(b, `,"agent":{"host":`...)
	b = appendString(b, r.Agent.Host)
	b = append(b, `,"pid":`...)
	b = strconv.AppendInt(b, int64(r.Agent.PID), 10)
	b = append(b, `,"instance":`...)
	b = appendString(b, r.Agent.Instance)
	b = append(b, `,"version":`...)
	b = appendString(b, r.Agent.Version)
	return append(b, "}}"...), nil
}

// fastTime reports whether appendTime writes t as Time.MarshalJSON does: in UTC, which is
// how records are written, and within the years MarshalJSON accepts.
func fastTime(t time.Time) bool {
	return t.IsZero() || (t.Location() == time.UTC && t.Year() >= 0 && t.Year() <= 9999)
}

// appendTime appends the field key and t, unless t is zero (omitzero).
func appendTime(b []byte, key string, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	b = append(b, key...)
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string escaped as encoding/json escapes it: control
// characters, the HTML-sensitive <, > and &, U+2028 and U+2029, and each byte of invalid
// UTF-8 as U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			switch {
			case r == utf8.RuneError && n == 1:
				b = append(b, `\ufffd`...)
			case r == '\u2028' || r == '\u2029':
				b = append(b, `\u202`...)
				b = append(b, hexDigits[r&0xf])
			default:
				b = append(b, s[i:i+n]...)
			}
			i += n
			continue
		}
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, `\b`...)
		case '\f':
			b = append(b, `\f`...)
		case '\n':
			b = append(b, `\n`...)
		case '\r':
			b = append(b, `\r`...)
		case '\t':
			b = append(b, `\t`...)
		case '<', '>', '&':
			b = append(b, `\u00`...)
			b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
		default:
			if c < 0x20 {
				b = append(b, `\u00`...)
				b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
			} else {
				b = append(b, c)
			}
		}
		i++
	}
	return append(b, '"')
}

// cleanRaw reports whether raw can be written as it is: empty (omitted), or valid JSON with
// no whitespace between tokens and nothing Marshal's HTML escaping would change. Parameters
// and undo plans come from json.Marshal, so they always are.
func cleanRaw(raw json.RawMessage) bool {
	if len(raw) == 0 {
		return true
	}
	in, esc := false, false
	for i, c := range raw {
		switch {
		case c == '<' || c == '>' || c == '&':
			return false
		case c == 0xe2 && i+2 < len(raw) && raw[i+1] == 0x80 && raw[i+2]&^1 == 0xa8: // U+2028, U+2029
			return false
		case in:
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				in = false
			}
		case c == '"':
			in = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			return false
		}
	}
	return json.Valid(raw)
}
