package request

import (
	"strings"
	"testing"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

func TestParams(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    fault.Params
		err  string // "" valid
		desc string // Describe of a valid one
	}{
		{"abort", fault.Params{"port": 8080, "abort": 503, "percent": "10%", "methods": []any{"post", "GET", "POST"}, "path": "/api/orders"},
			"", "http abort 503 on 10% of POST|GET /api/orders* to port 8080"},
		{"delay", fault.Params{"port": 8080, "delay": "2s", "jitter": "100ms", "path_regex": "/search/.*", "netns": "/run/netns/blue"},
			"", "http delay 2s±100ms on 100% of paths matching ^(?:/search/.*)$ to port 8080 in /run/netns/blue"},
		{"grpc", fault.Params{"port": 9090, "grpc_status": "unavailable", "headers": map[string]any{"x-user": "ann"}},
			"", "http grpc UNAVAILABLE on 100% of requests with 1 header match(es) to port 9090"},
		{"no port", fault.Params{"abort": 503}, "port: missing", ""},
		{"port 0", fault.Params{"port": 0, "abort": 503}, "port: 0 is not a port", ""},
		{"agent's port", fault.Params{"port": 8000, "abort": 503}, "port: 8000 is the agent's own listen port", ""},
		{"nothing to do", fault.Params{"port": 8080}, "needs abort, grpc_status or delay", ""},
		{"abort 199", fault.Params{"port": 8080, "abort": 199}, "abort: 199 is not an HTTP status", ""},
		{"grpc 0", fault.Params{"port": 8080, "grpc_status": 0}, "grpc_status: 0 is not a gRPC status to abort with", ""},
		{"grpc 2.5", fault.Params{"port": 8080, "grpc_status": 2.5}, "grpc_status: expected a gRPC status code", ""},
		{"both paths", fault.Params{"port": 8080, "abort": 503, "path": "/a", "path_regex": "/b"}, "path_regex: not with path", ""},
		{"bad regexp", fault.Params{"port": 8080, "abort": 503, "path_regex": "a(b"}, "path_regex: \"a(b\" is not a regular expression (RE2 syntax): missing closing )", ""},
		{"header twice", fault.Params{"port": 8080, "abort": 503, "headers": map[string]any{"x-a": "1", "X-A": "2"}}, "the same header as", ""},
		{"header two kinds", fault.Params{"port": 8080, "abort": 503, "headers": map[string]any{"x-a": map[string]any{"exact": "1", "prefix": "2"}}}, "headers.x-a: expected exactly one of exact, prefix, regex", ""},
		{"header number", fault.Params{"port": 8080, "abort": 503, "headers": map[string]any{"x-a": 5}}, "headers.x-a: expected a string", ""},
		{"bad header name", fault.Params{"port": 8080, "abort": 503, "headers": map[string]any{"x a": "1"}}, "\"x a\" is not a header name", ""},
		{"percent", fault.Params{"port": 8080, "abort": 503, "percent": 120}, "percent", ""},
		{"negative delay", fault.Params{"port": 8080, "delay": "-1s"}, "delay: -1s is negative", ""},
		{"drain", fault.Params{"port": 8080, "abort": 503, "drain": "10m"}, "drain: 10m0s is above the limit of 5m0s", ""},
		{"relative netns", fault.Params{"port": 8080, "abort": 503, "netns": "blue"}, "netns: \"blue\" is not an absolute path", ""},
		{"nine headers", fault.Params{"port": 8080, "abort": 503, "headers": map[string]any{
			"a": "1", "b": "1", "c": "1", "d": "1", "e": "1", "f": "1", "g": "1", "h": "1", "i": "1"}}, "headers: 9 entries: at most 8", ""},
		{"typo", fault.Params{"port": 8080, "abort": 503, "pecrent": 5}, "pecrent", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := New(tc.p, fault.Env{ListenPort: 8000})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := f.(fault.Describer).Describe(); got != tc.desc {
				t.Errorf("Describe() = %q, want %q", got, tc.desc)
			}
		})
	}
}

// TestHeaderMatch: the three forms match as Istio's do, on the whole value.
func TestHeaderMatch(t *testing.T) {
	f, err := New(fault.Params{"port": 8080, "abort": 503, "headers": map[string]any{
		"x-exact": "a.b", "x-prefix": map[string]any{"prefix": "qa-"}, "x-regex": map[string]any{"regex": "v[0-9]+"},
	}}, fault.Env{})
	if err != nil {
		t.Fatal(err)
	}
	h := f.(*Fault).cfg.rule.Headers
	for _, tc := range []struct {
		name, value string
		want        bool
	}{
		{"X-Exact", "a.b", true}, {"X-Exact", "axb", false}, {"X-Exact", "a.bc", false},
		{"X-Prefix", "qa-ann", true}, {"X-Prefix", "ann-qa-", false},
		{"X-Regex", "v12", true}, {"X-Regex", "xv12", false}, {"X-Regex", "v12x", false},
	} {
		if got := h[tc.name].MatchString(tc.value); got != tc.want {
			t.Errorf("%s: %q matches %v, want %v", tc.name, tc.value, got, tc.want)
		}
	}
}
