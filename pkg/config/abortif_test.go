package config

import (
	"strings"
	"testing"
	"time"
)

// TestAbortIfDefaultsAndInheritance: keys not given take their defaults; an experiment
// without abort_if takes agent.abort_if; one with its own keeps it.
func TestAbortIfDefaultsAndInheritance(t *testing.T) {
	cfg, err := Parse([]byte(`
agent:
  abort_if: {http: "http://app:8080/healthz", halt_on_trip: true}
experiments:
  - {name: inherits, schedule: "@every 1m", duration: 10s, fault: {type: cpu}}
  - name: own
    schedule: "@every 1m"
    duration: 10s
    fault: {type: cpu}
    abort_if: {http: "https://app/ready", expect_status: 204, timeout: 300ms, interval: 2s, failures: 5, max_trips: 1}
`), "t.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	def := AbortIf{HTTP: "http://app:8080/healthz", ExpectStatus: 200, Timeout: time.Second, Interval: time.Second, Failures: 3, MaxTrips: 3, HaltOnTrip: true}
	if cfg.Agent.AbortIf != def {
		t.Errorf("agent.abort_if = %+v, want %+v", cfg.Agent.AbortIf, def)
	}
	if got := cfg.Experiments[0].AbortIf; got != def {
		t.Errorf("inherited abort_if = %+v, want %+v", got, def)
	}
	own := AbortIf{HTTP: "https://app/ready", ExpectStatus: 204, Timeout: 300 * time.Millisecond, Interval: 2 * time.Second, Failures: 5, MaxTrips: 1}
	if got := cfg.Experiments[1].AbortIf; got != own {
		t.Errorf("own abort_if = %+v, want %+v", got, own)
	}

	cfg, err = Parse([]byte(`
experiments:
  - {name: none, schedule: "@every 1m", duration: 10s, fault: {type: cpu}}
`), "t.yaml", nil)
	if err != nil || cfg.Experiments[0].AbortIf.Enabled() {
		t.Fatalf("no abort_if anywhere: %+v, %v", cfg.Experiments[0].AbortIf, err)
	}
}

// TestAbortIfMaxTrips: max_trips below 1 is an error naming the key.
func TestAbortIfMaxTrips(t *testing.T) {
	_, err := Parse([]byte(`
experiments:
  - name: e
    schedule: "@every 1m"
    duration: 10s
    fault: {type: cpu}
    abort_if: {http: "http://app/healthz", max_trips: 0}
`), "t.yaml", nil)
	if err == nil || !strings.Contains(err.Error(), "experiments[0].abort_if.max_trips: must be at least 1, got 0") {
		t.Fatalf("err = %v", err)
	}
}
