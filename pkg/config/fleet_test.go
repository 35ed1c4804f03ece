package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const exp = `
experiments:
  - {name: e, schedule: "@every 1m", duration: 10s, fault: {type: cpu}}
`

// TestFleetValues: a number and a percent both decode; defaults fill what is not given.
func TestFleetValues(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ in, want string }{{"2", "2"}, {`"25%"`, "25%"}, {"3.0", "3"}} {
		cfg, err := Parse([]byte("fleet: {enabled: true, kubeconfig: "+kc+", max_active: "+tc.in+"}"+exp), "t.yaml", nil)
		if err != nil {
			t.Fatalf("max_active %s: %v", tc.in, err)
		}
		f := cfg.Fleet
		if string(f.MaxActive) != tc.want || f.Renew != 5*time.Second || f.StaleAfter != 30*time.Second || !f.RespectPDB {
			t.Errorf("max_active %s: got %+v", tc.in, f)
		}
	}
}

func TestLimitOf(t *testing.T) {
	for _, tc := range []struct {
		l    Limit
		n    int
		want int
	}{{"1", 50, 1}, {"3", 2, 3}, {"20%", 10, 2}, {"25%", 10, 2}, {"10%", 3, 1}, {"100%", 7, 7}, {"50%", 0, 1}} {
		if got := tc.l.Of(tc.n); got != tc.want {
			t.Errorf("%q of %d = %d, want %d", tc.l, tc.n, got, tc.want)
		}
	}
}

// TestFleetErrors: every key's mistake names the key, at its line.
func TestFleetErrors(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	os.WriteFile(kc, []byte("x"), 0o600)
	for _, tc := range []struct{ yaml, want string }{
		{"fleet: {enabled: true, kubeconfig: " + kc + ", renew: 0s}", "fleet.renew: must be above 0, got 0s"},
		{"fleet: {enabled: true, kubeconfig: " + kc + ", renew: 10s, stale_after: 15s}", "fleet.stale_after: must be at least twice fleet.renew (10s)"},
		{"fleet: {enabled: true, kubeconfig: " + kc + ", max_active: 0}", `fleet.max_active: expected a number of faults (at least 1) or a percent of the live members (like 20%), got "0"`},
		{"fleet: {enabled: true, kubeconfig: " + kc + ", max_active: 150%}", `fleet.max_active: expected a percent above 0% and at most 100%, got "150%"`},
		{"fleet: {enabled: true, kubeconfig: " + kc + ", disruptive: [cpu, dns]}", `fleet.disruptive[1]: unknown fault type "dns"`},
		{"fleet: {enabled: true, kubeconfig: /nonexistent/kc}", "fleet.kubeconfig: cannot read /nonexistent/kc: no such file or directory"},
	} {
		_, err := Parse([]byte("\n"+tc.yaml+exp), "t.yaml", nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant %s", tc.yaml, err, tc.want)
		}
	}
}

// TestFleetNeedsCredentials: fleet on, not in a pod, no kubeconfig anywhere → validate says so.
func TestFleetNeedsCredentials(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	t.Setenv("KUBECONFIG", "")
	old := serviceAccountDir
	serviceAccountDir = t.TempDir()
	t.Cleanup(func() { serviceAccountDir = old })
	_, err := Parse([]byte("fleet: {enabled: true}"+exp), "t.yaml", nil)
	if err == nil || !strings.Contains(err.Error(), "t.yaml:1:9: fleet.enabled: fleet mode needs Kubernetes credentials") {
		t.Fatalf("err = %v", err)
	}
	// Off: nothing is asked.
	if _, err := Parse([]byte("fleet: {enabled: false}"+exp), "t.yaml", nil); err != nil {
		t.Fatal(err)
	}
}
