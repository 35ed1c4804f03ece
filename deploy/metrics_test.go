package deploy

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/chaoscron/chaoscron/pkg/metrics"
)

const dashboardPath = "grafana/chaoscron.json"

// Labels a PodMonitor target adds to every series it scrapes, and le of histogram buckets.
var targetLabels = []string{"job", "instance", "namespace", "pod", "container", "endpoint"}

// exported returns the agent's metric families by name, every vector with a child, as a
// running agent with experiments of every fault type has them.
func exported(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	m := metrics.New("test")
	for _, ft := range []string{"cpu", "memory", "process", "network", "disk", "http"} {
		m.Touch(ft)
		m.Duration.WithLabelValues(ft).Observe(1)
		m.Reverts.WithLabelValues(ft, "ok")
		m.Recoveries.WithLabelValues(ft, "failed")
		m.Sweeps.WithLabelValues(ft)
	}
	m.Skips.WithLabelValues("x", "probability")
	m.Runs.WithLabelValues("x", "succeeded")
	m.NextFire.WithLabelValues("x").Set(1)
	m.Paused.WithLabelValues("x").Set(1)
	m.ConfigReload.WithLabelValues("ok")
	m.Fleet()
	m.FleetSlots.WithLabelValues("used")
	m.FleetRequests.WithLabelValues("renew", "ok")
	m.Observer("x")("seen")
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

// queries returns every PromQL expression in the dashboard (panel targets and template
// variable queries, at any depth) and in the rules, keyed by where it was found.
func queries(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	var walk func(where string, v any)
	walk = func(where string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, v := range x {
				if s, ok := v.(string); ok && (k == "expr" || k == "query" || k == "definition") && s != "" && s != "prometheus" {
					out[where+"."+k] = s
					continue
				}
				w := where + "." + k
				if title, ok := x["title"].(string); ok {
					w = where + "[" + title + "]." + k
				}
				walk(w, v)
			}
		case []any:
			for i, v := range x {
				walk(where+"["+strconv.Itoa(i)+"]", v)
			}
		}
	}
	walk("dashboard", dash)
	for _, g := range crdRules(t).Groups {
		for _, r := range g.Rules {
			out["rule "+r.Alert+r.Record] = r.Expr
		}
	}
	return out
}

var (
	metricRE   = regexp.MustCompile(`\bchaos_[a-z_]+`)
	selectorRE = regexp.MustCompile(`\b(chaos_[a-z_]+)\s*\{([^}]*)\}`)
	matcherRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"([^"]*)"`)
)

// Every metric the dashboard and the alert rules query is one the agent exports, and every
// label they select on is one it has (or the scrape adds). A renamed metric would otherwise
// leave a panel empty and an alert silent, with nothing to say so.
func TestQueriedMetricsExist(t *testing.T) {
	fams := exported(t)
	qs := queries(t)
	if len(qs) < 10 {
		t.Fatalf("found only %d queries: %v", len(qs), qs)
	}
	used := map[string]bool{}
	for where, q := range qs {
		for _, name := range metricRE.FindAllString(q, -1) {
			fam, _ := family(fams, name)
			if fam == nil {
				t.Errorf("%s queries %s, which the agent does not export", where, name)
				continue
			}
			used[fam.GetName()] = true
		}
		for _, m := range selectorRE.FindAllStringSubmatch(q, -1) {
			fam, suffix := family(fams, m[1])
			if fam == nil {
				continue
			}
			have := labelNames(fam)
			if suffix == "_bucket" {
				have = append(have, "le")
			}
			for _, lm := range matcherRE.FindAllStringSubmatch(m[2], -1) {
				if !slices.Contains(have, lm[1]) && !slices.Contains(targetLabels, lm[1]) {
					t.Errorf("%s selects %s on label %q; it has %v", where, m[1], lm[1], have)
				}
				if fam.GetName() == "chaos_injections_total" && lm[1] == "status" &&
					!slices.Contains([]string{metrics.Success, metrics.Failed, metrics.Skipped}, lm[2]) {
					t.Errorf("%s selects status=%q; the agent uses success, failed, skipped", where, lm[2])
				}
			}
		}
	}
	// The dashboard and the rules together show every chaos_ metric: a new one gets a panel.
	// chaos_config_reloads_total is left out: nothing reloads the config yet.
	for name := range fams {
		if strings.HasPrefix(name, "chaos_") && !used[name] && name != "chaos_config_reloads_total" {
			t.Errorf("the agent exports %s, which no dashboard panel or rule uses", name)
		}
	}
}

// family finds the family a queried name belongs to: itself, or a histogram's series.
func family(fams map[string]*dto.MetricFamily, name string) (*dto.MetricFamily, string) {
	if f, ok := fams[name]; ok {
		return f, ""
	}
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, s); ok {
			if f, ok := fams[base]; ok && (f.GetType() == dto.MetricType_HISTOGRAM || f.GetType() == dto.MetricType_SUMMARY && s != "_bucket") {
				return f, s
			}
		}
	}
	return nil, ""
}

func labelNames(f *dto.MetricFamily) []string {
	var out []string
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if !slices.Contains(out, l.GetName()) {
				out = append(out, l.GetName())
			}
		}
	}
	return out
}

// The helper itself: names that are not exported are caught, histogram series are not.
func TestFamilyLookup(t *testing.T) {
	fams := exported(t)
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"chaos_injections_total", true},
		{"chaos_injection_duration_seconds_bucket", true},
		{"chaos_injection_duration_seconds_sum", true},
		{"chaos_injection_duration_seconds_count", true},
		{"chaos_injections_total_bucket", false}, // a counter has no buckets
		{"chaos_injection_active_seconds", false},
		{"chaos_fault_active", false},
	} {
		if f, _ := family(fams, tc.name); (f != nil) != tc.ok {
			t.Errorf("%s: found %v, want %v", tc.name, f != nil, tc.ok)
		}
	}
}
