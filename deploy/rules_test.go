package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	yamlv3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"
)

const (
	crdRulesPath   = "monitoring/prometheusrule.yaml"
	plainRulesPath = "prometheus/rules.yaml"
	rulesTestPath  = "prometheus/rules_test.yaml"
	rulesHeader    = "# Generated from deploy/monitoring/prometheusrule.yaml (spec.groups) by\n" +
		"#   go test ./deploy -run TestRulesFile -update\n" +
		"# Do not edit: edit the PrometheusRule and regenerate. Checked by promtool in rules_test.go.\n"
)

// crdRules returns the PrometheusRule's spec, decoded strictly.
func crdRules(t *testing.T) ruleFile {
	t.Helper()
	b, err := os.ReadFile(crdRulesPath)
	if err != nil {
		t.Fatal(err)
	}
	var pr prometheusRule
	if err := yaml.UnmarshalStrict(b, &pr); err != nil {
		t.Fatalf("%s: %v", crdRulesPath, err)
	}
	if len(pr.Spec.Groups) == 0 {
		t.Fatalf("%s has no rule groups", crdRulesPath)
	}
	return pr.Spec
}

// The plain rules file is the PrometheusRule's spec, for promtool and for a Prometheus
// without the operator. -update regenerates it.
func TestRulesFile(t *testing.T) {
	want := crdRules(t)
	if *update {
		// yaml.v3: multi-line expressions as literal blocks, no folding of long lines.
		var out bytes.Buffer
		out.WriteString(rulesHeader)
		enc := yamlv3.NewEncoder(&out)
		enc.SetIndent(2)
		if err := enc.Encode(want); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(plainRulesPath, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(plainRulesPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte(rulesHeader)) {
		t.Errorf("%s lacks the generated-file header", plainRulesPath)
	}
	var got ruleFile
	if err := yaml.UnmarshalStrict(b, &got); err != nil {
		t.Fatalf("%s: %v", plainRulesPath, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s differs from the spec of %s; run: go test ./deploy -run TestRulesFile -update", plainRulesPath, crdRulesPath)
	}
}

// promtool checks the rules (syntax, templates) and runs the unit tests in rules_test.yaml.
func TestRulesPromtool(t *testing.T) {
	promtool := requireTool(t, "promtool")
	for _, args := range [][]string{
		{"check", "rules", plainRulesPath},
		{"test", "rules", rulesTestPath},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		} else {
			t.Logf("promtool %v:\n%s", args, out)
		}
	}
}

// Every alert has a unit test in rules_test.yaml that expects it to fire.
func TestEveryAlertIsTested(t *testing.T) {
	var tests struct {
		RuleFiles          []string `json:"rule_files"`
		EvaluationInterval string   `json:"evaluation_interval"`
		Tests              []struct {
			Name           string `json:"name"`
			Interval       string `json:"interval"`
			InputSeries    []any  `json:"input_series"`
			AlertRuleTests []struct {
				EvalTime  string `json:"eval_time"`
				AlertName string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
			PromQLExprTest []any `json:"promql_expr_test"`
		} `json:"tests"`
	}
	b, err := os.ReadFile(rulesTestPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, &tests); err != nil {
		t.Fatalf("%s: %v", rulesTestPath, err)
	}
	if len(tests.RuleFiles) != 1 || filepath.Join(filepath.Dir(rulesTestPath), tests.RuleFiles[0]) != plainRulesPath {
		t.Errorf("%s tests %v, want %s", rulesTestPath, tests.RuleFiles, plainRulesPath)
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTests {
			if len(a.ExpAlerts) > 0 {
				fires[a.AlertName] = true
			} else {
				silent[a.AlertName] = true
			}
		}
	}
	for _, g := range crdRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if !fires[r.Alert] {
				t.Errorf("alert %s is never expected to fire in %s", r.Alert, rulesTestPath)
			}
			if !silent[r.Alert] {
				t.Errorf("alert %s is never expected to stay silent in %s", r.Alert, rulesTestPath)
			}
		}
	}
}
