package main

import (
	"strings"
	"testing"
)

// TestValidateHTTPFault: `chaoscron validate` reports the http fault's bad input, each with
// file, line, column and key path; and two experiments on one port are refused.
func TestValidateHTTPFault(t *testing.T) {
	const doc = `agent: {listen: ":8000"}
experiments:
  - name: a
    schedule: "@every 1m"
    duration: 10s
    fault: {type: http, port: 8080, abort: 503, percent: 10}
  - name: b
    schedule: "@every 1m"
    duration: 10s
    fault:
      type: http
      port: 8080
      delay: 2s
  - name: c
    schedule: "@every 1m"
    duration: 10s
    fault: {type: http, port: 8000, abort: 700, grpc_status: 17, path_regex: "([a-z", jitter: 1s}
  - name: d
    schedule: "@every 1m"
    duration: 10s
    fault:
      type: http
      port: 9090
      path: api
      methods: ["GE T"]
      grpc_status: NOPE
      headers:
        x-user: {regex: "(("}
        x-team: {suffix: a}
  - name: e
    disabled: true
    schedule: "@every 1m"
    duration: 10s
    fault: {type: http, port: 8080, delay: 1s}
  - name: f
    schedule: "@every 1m"
    duration: 10s
    fault: {type: http, port: 8081, netns: /run/netns/other, delay: 1s}
  - name: g
    schedule: "@every 1m"
    duration: 10s
    fault: {type: http, port: 8081, delay: 1s}
`
	dir := t.TempDir()
	cfg := writeConfig(t, dir, doc)
	out, errs, code := cli(t, dir, "validate", "-c", cfg)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr %s", code, errs)
	}
	got := strings.ReplaceAll(out+errs, cfg, "h.yaml")
	for _, want := range []string{
		`h.yaml:10:5: experiments[1].fault: http port 8080 in the agent's network namespace is faulted by experiment "a" already (line 6)`,
		`h.yaml:17:25: experiments[2].fault.port: 8000 is the agent's own listen port`,
		`h.yaml:17:37: experiments[2].fault.abort: 700 is not an HTTP status to answer with (200..599)`,
		`h.yaml:17:49: experiments[2].fault.grpc_status: 17 is not a gRPC status to abort with (1..16; 0 is OK)`,
		`experiments[2].fault.path_regex: "([a-z" is not a regular expression (RE2 syntax): missing closing ]`,
		`experiments[2].fault.jitter: needs a delay`,
		`h.yaml:24:7: experiments[3].fault.path: "api" is not a path prefix`,
		`h.yaml:25:17: experiments[3].fault.methods[0]: "GE T" is not an HTTP method`,
		`experiments[3].fault.grpc_status: "NOPE" is not a gRPC status: a code 1..16 or a name (CANCELLED,`,
		`h.yaml:28:18: experiments[3].fault.headers.x-user.regex: "((" is not a regular expression`,
		`h.yaml:29:18: experiments[3].fault.headers.x-team.suffix: unknown match "suffix": expected exact, prefix or regex`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in\n%s", want, got)
		}
	}
	// The disabled experiment e and the experiments in other namespaces (f, g) claim nothing
	// that another has.
	for _, bad := range []string{"experiments[4]", "experiments[5]", "experiments[6]"} {
		if strings.Contains(got, bad) {
			t.Errorf("%s reported:\n%s", bad, got)
		}
	}
}
