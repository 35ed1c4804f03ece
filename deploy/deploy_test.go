package deploy

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

const (
	sidecarName = "chaoscron"
	injectLabel = "chaoscron.io/inject"
	// shutdownBound is cmd/chaoscron's bound on reverting every active fault after SIGTERM.
	shutdownBound = 20 * time.Second
	// exitMargin is what the grace period must leave on top of it, for the process to exit.
	exitMargin = 5 * time.Second
	// sidecarSchedule is the schedule the component ships, copied from schedules/.
	sidecarSchedule = "business-hours-latency.yaml"
)

// The capabilities the sidecar is granted, and why, are in components/sidecar/container.yaml.
var sidecarCaps = []string{"KILL", "NET_ADMIN"}

// expectations per kustomization directory (relative to deploy/). Every kustomization in the
// tree must be listed, so a new one cannot go unchecked.
var expectations = map[string]struct {
	caps        []string // the sidecar's added capabilities, sorted; nil: no sidecar in this build
	dryRun      bool     // the agent's effective agent.dry_run
	experiments []string // the experiments in the sidecar's config
}{
	"base":                  {caps: sidecarCaps, experiments: []string{"api-latency", "slow-uplink"}},
	"overlays/dry-run":      {caps: sidecarCaps, experiments: []string{"api-latency", "slow-uplink"}, dryRun: true},
	"overlays/live":         {caps: sidecarCaps, experiments: []string{"api-latency", "slow-uplink"}},
	"testdata/with-ptrace":  {caps: []string{"KILL", "NET_ADMIN", "SYS_PTRACE"}, experiments: []string{"api-latency", "slow-uplink"}},
	"testdata/own-schedule": {caps: sidecarCaps, experiments: []string{"freeze-worker"}},
	"testdata/fleet":        {caps: sidecarCaps, experiments: []string{"api-latency", "slow-uplink"}},
	"monitoring":            {},
}

// kustomizationFile is the part of a kustomization.yaml the tests walk.
type kustomizationFile struct {
	Kind       string   `json:"kind"`
	Components []string `json:"components"`
}

// kustomizations finds every kustomization under deploy/, by kind.
func kustomizations(t *testing.T) (builds, components []string) {
	t.Helper()
	err := filepath.WalkDir(".", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || e.Name() != "kustomization.yaml" {
			return err
		}
		var k kustomizationFile
		if err := readYAML(p, &k); err != nil {
			return err
		}
		dir := filepath.ToSlash(filepath.Dir(p))
		if k.Kind == "Component" {
			components = append(components, dir)
		} else {
			builds = append(builds, dir)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return builds, components
}

func readYAML(p string, v any) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

// objects is one kustomize build, every object decoded strictly into its API type.
type objects struct {
	deployments     []appsv1.Deployment
	services        []corev1.Service
	configMaps      map[string]corev1.ConfigMap
	podMonitors     []podMonitor
	prometheusRules []prometheusRule
	serviceAccounts []corev1.ServiceAccount
	roles           []rbacv1.Role
	roleBindings    []rbacv1.RoleBinding
}

// build runs kustomize (the Go API, default options: load restrictor on, as kubectl, Argo CD
// and Flux run it) on dir and decodes the result strictly: an unknown or misplaced field is
// an error, as it would be for kubectl apply --validate=strict.
func build(t *testing.T, dir string) *objects {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	o := &objects{configMaps: map[string]corev1.ConfigMap{}}
	for _, r := range m.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("%s %s/%s", dir, r.GetKind(), r.GetName())
		var into any
		switch gvk := r.GetGvk(); gvk.ApiVersion() + " " + gvk.Kind {
		case "apps/v1 Deployment":
			o.deployments = append(o.deployments, appsv1.Deployment{})
			into = &o.deployments[len(o.deployments)-1]
		case "v1 Service":
			o.services = append(o.services, corev1.Service{})
			into = &o.services[len(o.services)-1]
		case "v1 ConfigMap":
			var cm corev1.ConfigMap
			if err := yaml.UnmarshalStrict(y, &cm); err != nil {
				t.Fatalf("%s: %v", id, err)
			}
			o.configMaps[cm.Name] = cm
			continue
		case "v1 ServiceAccount":
			o.serviceAccounts = append(o.serviceAccounts, corev1.ServiceAccount{})
			into = &o.serviceAccounts[len(o.serviceAccounts)-1]
		case "rbac.authorization.k8s.io/v1 Role":
			o.roles = append(o.roles, rbacv1.Role{})
			into = &o.roles[len(o.roles)-1]
		case "rbac.authorization.k8s.io/v1 RoleBinding":
			o.roleBindings = append(o.roleBindings, rbacv1.RoleBinding{})
			into = &o.roleBindings[len(o.roleBindings)-1]
		case "monitoring.coreos.com/v1 PodMonitor":
			o.podMonitors = append(o.podMonitors, podMonitor{})
			into = &o.podMonitors[len(o.podMonitors)-1]
		case "monitoring.coreos.com/v1 PrometheusRule":
			o.prometheusRules = append(o.prometheusRules, prometheusRule{})
			into = &o.prometheusRules[len(o.prometheusRules)-1]
		default:
			t.Fatalf("%s: %s is a kind this test does not decode; add it", id, gvk)
		}
		if err := yaml.UnmarshalStrict(y, into); err != nil {
			t.Fatalf("%s does not decode strictly: %v\n%s", id, err, y)
		}
	}
	return o
}

// The Prometheus Operator CRDs, as far as these manifests use them. Decoded strictly, so a
// field that is not here (a typo, or a field of another version) fails the test.
type podMonitor struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		NamespaceSelector struct {
			Any        bool     `json:"any,omitempty"`
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector"`
		Selector            metav1.LabelSelector `json:"selector"`
		PodMetricsEndpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path"`
			Interval      string `json:"interval"`
			ScrapeTimeout string `json:"scrapeTimeout"`
		} `json:"podMetricsEndpoints"`
	} `json:"spec"`
}

type prometheusRule struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            ruleFile          `json:"spec"`
}

// ruleFile is both a PrometheusRule's spec and a Prometheus rules file.
// The yaml tags are for writing prometheus/rules.yaml (yaml.v3, fields in this order).
type ruleFile struct {
	Groups []ruleGroup `json:"groups" yaml:"groups"`
}

type ruleGroup struct {
	Name     string `json:"name" yaml:"name"`
	Interval string `json:"interval,omitempty" yaml:"interval,omitempty"`
	Rules    []rule `json:"rules" yaml:"rules"`
}

type rule struct {
	Alert       string            `json:"alert,omitempty" yaml:"alert,omitempty"`
	Record      string            `json:"record,omitempty" yaml:"record,omitempty"`
	Expr        string            `json:"expr" yaml:"expr"`
	For         string            `json:"for,omitempty" yaml:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty" yaml:"annotations,omitempty"`
}

func TestKustomizations(t *testing.T) {
	builds, components := kustomizations(t)
	if len(builds) == 0 || len(components) == 0 {
		t.Fatalf("found kustomizations %v and components %v", builds, components)
	}
	used := map[string]bool{}
	for _, dir := range builds {
		t.Run(dir, func(t *testing.T) {
			want, ok := expectations[dir]
			if !ok {
				t.Fatalf("kustomization %s has no entry in expectations", dir)
			}
			o := build(t, dir)
			var sidecars int
			for _, d := range o.deployments {
				if d.Labels[injectLabel] != "true" {
					continue
				}
				sidecars++
				t.Run(d.Name, func(t *testing.T) {
					cfg := checkSidecar(t, &d, o, want.caps, want.dryRun)
					var names []string
					for _, e := range cfg.Experiments {
						names = append(names, e.Name)
					}
					if !slices.Equal(names, want.experiments) {
						t.Errorf("the sidecar's config has experiments %v, want %v", names, want.experiments)
					}
				})
			}
			if (sidecars > 0) != (want.caps != nil) {
				t.Errorf("%d Deployments with the sidecar, want them: %v", sidecars, want.caps != nil)
			}
		})
		var k kustomizationFile
		if err := readYAML(path.Join(dir, "kustomization.yaml"), &k); err != nil {
			t.Fatal(err)
		}
		for _, c := range k.Components {
			used[path.Clean(path.Join(dir, c))] = true
		}
	}
	for _, c := range components {
		if !used[c] {
			t.Errorf("component %s is built by no kustomization here, so nothing tests it", c)
		}
	}
}

// The component ships a copy of a schedule from schedules/ (kustomize's load restrictor
// refuses files outside the component's directory); the two must not drift.
func TestSidecarScheduleIsTheExample(t *testing.T) {
	want, err := os.ReadFile(filepath.Join("..", "schedules", sidecarSchedule))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join("components", "sidecar", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("components/sidecar/config.yaml differs from schedules/%s: cp schedules/%[1]s deploy/components/sidecar/config.yaml", sidecarSchedule)
	}
}

// The PodMonitor scrapes exactly the pods the sidecar component marks, on the agent's port.
func TestPodMonitorFindsTheSidecar(t *testing.T) {
	mon := build(t, "monitoring")
	app := build(t, "base")
	if len(mon.podMonitors) != 1 || len(mon.prometheusRules) != 1 {
		t.Fatalf("monitoring builds %d PodMonitors and %d PrometheusRules, want 1 and 1", len(mon.podMonitors), len(mon.prometheusRules))
	}
	pm := mon.podMonitors[0]
	if len(pm.Spec.Selector.MatchLabels) == 0 || len(pm.Spec.Selector.MatchExpressions) != 0 {
		t.Fatalf("PodMonitor selector %+v: want matchLabels only", pm.Spec.Selector)
	}
	var found int
	for _, d := range app.deployments {
		labels := d.Spec.Template.Labels
		selected := true
		for k, v := range pm.Spec.Selector.MatchLabels {
			selected = selected && labels[k] == v
		}
		i := slices.IndexFunc(d.Spec.Template.Spec.Containers, func(c corev1.Container) bool { return c.Name == sidecarName })
		if selected != (i >= 0) {
			t.Errorf("Deployment %s: selected by the PodMonitor %v, has the sidecar %v", d.Name, selected, i >= 0)
		}
		if i < 0 {
			continue
		}
		found++
		c := &d.Spec.Template.Spec.Containers[i]
		for _, ep := range pm.Spec.PodMetricsEndpoints {
			if resolvePort(c, intstr.FromString(ep.Port)) != 8000 || ep.Path != "/metrics" {
				t.Errorf("PodMonitor endpoint %+v does not reach the sidecar's /metrics on 8000", ep)
			}
		}
	}
	if found == 0 {
		t.Fatal("no sidecar in the base to check the PodMonitor against")
	}
}
