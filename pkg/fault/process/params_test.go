package process

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/chaoscron/chaoscron/pkg/fault"
	"golang.org/x/sys/unix"
)

func TestNewValidation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		params string // JSON, as numbers and strings come from YAML
		keys   string // the FieldError keys, comma-separated; "" for no error
	}{
		{"name", `{"name":"nginx"}`, ""},
		{"everything", `{"name":"/ngin.*/","cmdline":"-c /etc","exe":"/usr/sbin/nginx","user":"www-data","pidfile":"/run/nginx.pid","port":80,"count":"all","ignore_missing":true,"action":"kill","signal":"SIGINT","grace":"1s"}`, ""},
		{"stop", `{"cmdline":"app","action":"stop","percent":"50%"}`, ""},
		{"uid", `{"user":0}`, ""},
		{"no matcher", `{"count":2}`, ""},
		{"no matcher at all", `{}`, ""},
		{"empty name", `{"name":""}`, "name"},
		{"empty regexp", `{"name":"//"}`, "name"},
		{"bad name regexp", `{"name":"/(/"}`, "name"},
		{"bad cmdline regexp", `{"cmdline":"("}`, "cmdline"},
		{"empty cmdline", `{"cmdline":""}`, "cmdline"},
		{"relative exe path", `{"exe":"bin/x"}`, "exe"},
		{"relative pidfile", `{"pidfile":"x.pid"}`, "pidfile"},
		{"port 0", `{"port":0}`, "port"},
		{"port too big", `{"port":70000}`, "port"},
		{"user list", `{"user":["a"]}`, "user"},
		{"count and percent", `{"name":"x","count":2,"percent":"10%"}`, "count"},
		{"count zero", `{"name":"x","count":0}`, "count"},
		{"count words", `{"name":"x","count":"some"}`, "count"},
		{"count fraction", `{"name":"x","count":1.5}`, "count"},
		{"percent zero", `{"name":"x","percent":0}`, "percent"},
		{"action", `{"name":"x","action":"restart"}`, "action"},
		{"signal name", `{"name":"x","signal":"TERMINATE"}`, "signal"},
		{"signal SIGSTOP", `{"name":"x","signal":"STOP"}`, "signal"},
		{"signal SIGCHLD", `{"name":"x","signal":17}`, "signal"},
		{"signal with stop", `{"name":"x","action":"stop","signal":"TERM"}`, "signal"},
		{"grace with stop", `{"name":"x","action":"stop","grace":"1s"}`, "grace"},
		{"negative grace", `{"name":"x","grace":"-1s"}`, "grace"},
		{"grace too long", `{"name":"x","grace":"1h"}`, "grace"},
		{"unknown key", `{"name":"x","nmae":"y"}`, "nmae"},
		{"several at once", `{"port":0,"count":"x","action":"y"}`, "port,count,action"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p fault.Params
			if err := json.Unmarshal([]byte(tc.params), &p); err != nil {
				t.Fatal(err)
			}
			_, err := fault.New("process", p, fault.Env{})
			want := tc.keys
			if strings.HasPrefix(tc.name, "no matcher") {
				// A FieldError without key: it is about the fault as a whole.
				if fes := fault.FieldErrors(err); len(fes) != 1 || fes[0].Key != "" || !strings.Contains(fes[0].Msg, "at least one of") {
					t.Fatalf("error %v: want one keyless error asking for a matcher", err)
				}
				return
			}
			var keys []string
			for _, fe := range fault.FieldErrors(err) {
				keys = append(keys, fe.Key)
			}
			if got := strings.Join(keys, ","); got != want {
				t.Fatalf("error keys %q, want %q (error: %v)", got, want, err)
			}
		})
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[any]unix.Signal{
		"SIGTERM": unix.SIGTERM, "TERM": unix.SIGTERM, "term": unix.SIGTERM, " sigkill ": unix.SIGKILL,
		15: unix.SIGTERM, "15": unix.SIGTERM, 9.0: unix.SIGKILL, "INT": unix.SIGINT, "HUP": unix.SIGHUP,
	} {
		if got, err := parseSignal(in); err != nil || got != want {
			t.Errorf("parseSignal(%#v) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []any{"", "SIG", "NOPE", 0, -1, 99, "SIGCONT", "TSTP", 1.5, true} {
		if got, err := parseSignal(in); err == nil {
			t.Errorf("parseSignal(%#v) = %v, want an error", in, got)
		}
	}
}

func TestDescribe(t *testing.T) {
	for p, want := range map[string]string{
		`{"name":"nginx"}`: "kill 1 process matching name=nginx (SIGTERM, then SIGKILL after 5s)",
		`{"name":"/ngin.*/","port":80,"count":3,"grace":"1s"}`: "kill 3 processes matching name=/ngin.*/ and port=80 (SIGTERM, then SIGKILL after 1s)",
		`{"cmdline":"app\\.py","count":"all","signal":"KILL"}`: `kill every process matching cmdline=/app\.py/ (SIGKILL)`,
		`{"user":"www","exe":"php","percent":"25%"}`:           "kill 25% of the processes matching exe=php and user=www (SIGTERM, then SIGKILL after 5s)",
		`{"pidfile":"/run/x.pid","action":"stop"}`:             "stop 1 process matching pidfile=/run/x.pid until revert",
	} {
		var params fault.Params
		if err := json.Unmarshal([]byte(p), &params); err != nil {
			t.Fatal(err)
		}
		f, err := fault.New("process", params, fault.Env{})
		if err != nil {
			t.Fatal(err)
		}
		if got := f.(fault.Describer).Describe(); got != want {
			t.Errorf("Describe(%s)\n got %q\nwant %q", p, got, want)
		}
	}
}
