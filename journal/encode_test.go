package journal

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/internal/testenv"
)

// encode must write what json.Marshal writes, byte for byte, or fail where it fails: the
// journal's readers, and records written before encode existed, see one format.
func checkEncode(t *testing.T, r *Record) {
	t.Helper()
	want, werr := json.Marshal(r)
	got, gerr := encode(r)
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("encode error %v, json.Marshal error %v, for %+v", gerr, werr, r)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encode differs from json.Marshal:\n got %s\nwant %s", got, want)
	}
}

func TestEncodeMatchesMarshal(t *testing.T) {
	full := Record{
		ID: 1<<64 - 1, Experiment: "net-latency", Fault: "network",
		Params:  json.RawMessage(`{"interface":"eth0","delay":"100ms","match":{"ports":[80,443]}}`),
		Trigger: "schedule", ScheduledAt: t0, StartedAt: t0.Add(1234567 * time.Nanosecond),
		AppliedAt: t0.Add(time.Second), EndedAt: t0.Add(time.Minute), PlannedEnd: t0.Add(time.Hour),
		Status: Succeeded, Cleanup: CleanupDone, Undo: json.RawMessage(`{"ifindex":3,"handle":"c4a1:"}`),
		Error: "revert: \"qdisc\" gone\n\ttab", Reason: "halt <by> ops & co", DryRun: true,
		Agent: Agent{Host: "node-1", PID: -1, Instance: "x\u2028y\u2029z", Version: "v1.2.3"},
	}
	zone := time.FixedZone("CET", 3600)
	cases := map[string]Record{
		"zero":             {},
		"full":             full,
		"control bytes":    {Experiment: "a\x00b\x1fc\x7f\b\f\r"},
		"invalid utf-8":    {Reason: "bad \xff\xfe bytes \xe2\x80 cut", Error: "\xc3"},
		"multibyte":        {Experiment: "Grüße 日本 🎉"},
		"time in a zone":   {StartedAt: t0.In(zone)},
		"year 10000":       {StartedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		"year -1":          {StartedAt: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)},
		"raw with spaces":  {Params: json.RawMessage(` { "a" : [1, 2] } `)},
		"raw space in str": {Params: json.RawMessage(`{"cmd":"python app.py"}`)},
		"raw with html":    {Undo: json.RawMessage(`{"p":"<&>"}`)},
		"raw with u2028":   {Undo: json.RawMessage("{\"p\":\"a\u2028b\"}")},
		"raw escapes":      {Params: json.RawMessage(`{"p":"a\"b\\","q":"\u003c"}`)},
		"raw invalid":      {Params: json.RawMessage(`{"a":`)},
		"raw null":         {Params: json.RawMessage(`null`)},
		"raw empty":        {Params: json.RawMessage{}},
		"raw not utf-8":    {Params: json.RawMessage("{\"a\":\"\xff\xfe\"}")}, // checkState refuses it before encode
		"fleet slot":       {Slot: &Slot{Namespace: "shop", Lease: "chaoscron-web-slots", Holder: "web-1/ab12/7"}},
	}
	for name, r := range cases {
		t.Run(name, func(t *testing.T) { checkEncode(t, &r) })
	}
	// The record as the runner writes it takes the fast path: the buffer is its only allocation.
	if n := testing.AllocsPerRun(100, func() { _, _ = encode(&full) }); n != 1 && !testenv.Race {
		t.Errorf("encode of a full record: %v allocations, want 1", n)
	}
}

func FuzzEncode(f *testing.F) {
	f.Add("exp", "reason <&>", []byte(`{"a":[1,"b c"]}`), int64(0), 0, false)
	f.Add("\xff\u2028", "", []byte(` {"x" : 1}`), int64(-9e18), 3600, true)
	f.Add("", "\x00\"\\", []byte(`"\u2028"`), int64(1e18), -7200, false)
	f.Add("ok", "\xe2\x80", []byte("\"\xff\""), int64(7), 0, false)
	f.Fuzz(func(t *testing.T, s, reason string, raw []byte, nanos int64, offset int, dry bool) {
		at := time.Unix(0, nanos).UTC()
		if offset != 0 {
			at = at.In(time.FixedZone("z", offset%(30*3600)))
		}
		r := Record{
			ID: uint64(nanos), Experiment: s, Fault: reason, Params: raw, Trigger: s,
			StartedAt: at, EndedAt: at.AddDate(int(nanos%20000), 0, 0), Status: Status(s),
			Cleanup: Cleanup(reason), Undo: raw, Error: s + reason, Reason: reason, DryRun: dry,
			Agent: Agent{Host: s, PID: offset, Instance: reason, Version: s},
		}
		checkEncode(t, &r)
	})
}
