package deploy

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

// fleetGrants is everything the fleet Role may grant, one "group resource verb" a line. A new
// verb is a conscious change: here, in components/fleet/rbac.yaml, and in README.md's table.
var fleetGrants = []string{
	"coordination.k8s.io leases create",
	"coordination.k8s.io leases delete",
	"coordination.k8s.io leases get",
	"coordination.k8s.io leases list",
	"coordination.k8s.io leases update",
	"coordination.k8s.io leases watch",
	"core events create",
	"core events patch",
	"policy poddisruptionbudgets list",
}

// grants flattens a Role's rules into fleetGrants' form. A rule naming resourceNames or
// nonResourceURLs, or using a wildcard, is reported as such, so it cannot pass unseen.
func grants(r rbacv1.Role) []string {
	var out []string
	for _, rule := range r.Rules {
		if len(rule.ResourceNames) > 0 || len(rule.NonResourceURLs) > 0 {
			out = append(out, fmt.Sprintf("unexpected rule %+v", rule))
		}
		for _, g := range rule.APIGroups {
			if g == "" {
				g = "core"
			}
			for _, res := range rule.Resources {
				for _, v := range rule.Verbs {
					out = append(out, g+" "+res+" "+v)
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// The fleet component, on top of the sidecar: the ServiceAccount bound to exactly the Role
// above, the agent's token in its container only, the downward API values it names itself
// by, and the pod's labels as a file.
func TestFleetComponent(t *testing.T) {
	o := build(t, "testdata/fleet")
	if len(o.serviceAccounts) != 1 || len(o.roles) != 1 || len(o.roleBindings) != 1 {
		t.Fatalf("%d ServiceAccounts, %d Roles, %d RoleBindings, want one of each", len(o.serviceAccounts), len(o.roles), len(o.roleBindings))
	}
	sa, role, rb := o.serviceAccounts[0], o.roles[0], o.roleBindings[0]
	if got := grants(role); !slices.Equal(got, fleetGrants) {
		t.Errorf("Role %s grants\n  %s\nwant exactly\n  %s", role.Name, strings.Join(got, "\n  "), strings.Join(fleetGrants, "\n  "))
	}
	if rb.RoleRef != (rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name}) {
		t.Errorf("RoleBinding %s refers to %+v, want Role %s", rb.Name, rb.RoleRef, role.Name)
	}
	// No namespace on the subject: it then means the binding's own, wherever it is applied.
	if want := []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa.Name}}; !slices.Equal(rb.Subjects, want) {
		t.Errorf("RoleBinding %s binds %+v, want %+v", rb.Name, rb.Subjects, want)
	}

	var fleet int
	for _, d := range o.deployments {
		if d.Labels[injectLabel] != "true" {
			continue
		}
		fleet++
		pod := &d.Spec.Template.Spec
		if pod.ServiceAccountName != sa.Name {
			t.Errorf("Deployment %s runs as ServiceAccount %q, want %q", d.Name, pod.ServiceAccountName, sa.Name)
		}
		if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
			t.Errorf("Deployment %s: automountServiceAccountToken is not false: the app's containers would get the agent's token", d.Name)
		}
		for _, c := range pod.Containers {
			if c.Name != sidecarName {
				checkNoToken(t, d.Name, c)
				continue
			}
			checkFleetEnv(t, c, d.Spec.Template.Labels)
			checkFleetMounts(t, c, pod)
		}
	}
	if fleet == 0 {
		t.Fatal("no Deployment with the sidecar in testdata/fleet")
	}
}

func envByName(c corev1.Container) map[string]corev1.EnvVar {
	m := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		m[e.Name] = e
	}
	return m
}

func checkFleetEnv(t *testing.T, c corev1.Container, labels map[string]string) {
	t.Helper()
	env := envByName(c)
	if e := env["CHAOSCRON_FLEET__ENABLED"]; e.Value != "true" || e.ValueFrom != nil {
		t.Errorf("CHAOSCRON_FLEET__ENABLED is %+v, want the literal true", e)
	}
	for name, path := range map[string]string{
		"CHAOSCRON_FLEET__GROUP": "metadata.labels['app.kubernetes.io/name']",
		"POD_NAME":               "metadata.name",
		"POD_NAMESPACE":          "metadata.namespace",
		"POD_UID":                "metadata.uid",
	} {
		e, ok := env[name]
		if !ok || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != path || e.Value != "" {
			t.Errorf("env %s is %+v, want the downward API field %s", name, e, path)
		}
	}
	if labels["app.kubernetes.io/name"] == "" {
		t.Errorf("the pod template has no app.kubernetes.io/name label: fleet.group would be empty (labels %v)", labels)
	}
}

func checkFleetMounts(t *testing.T, c corev1.Container, pod *corev1.PodSpec) {
	t.Helper()
	// fleet.labels_file: /etc/podinfo/labels, the pod's labels from the downward API.
	m, v := mountFor(t, &c, pod, "/etc/podinfo/labels")
	if !m.ReadOnly || v.DownwardAPI == nil || len(v.DownwardAPI.Items) != 1 ||
		v.DownwardAPI.Items[0].Path != "labels" || v.DownwardAPI.Items[0].FieldRef == nil || v.DownwardAPI.Items[0].FieldRef.FieldPath != "metadata.labels" {
		t.Errorf("/etc/podinfo/labels is on %+v (read-only %v), want a downward API volume with metadata.labels as labels", v.VolumeSource, m.ReadOnly)
	}
	// client-go's in-cluster config reads token, ca.crt and namespace from here.
	m, v = mountFor(t, &c, pod, "/var/run/secrets/kubernetes.io/serviceaccount/token")
	if !m.ReadOnly || m.MountPath != "/var/run/secrets/kubernetes.io/serviceaccount" || v.Projected == nil {
		t.Fatalf("the token directory is %+v on %+v, want a read-only projected volume", m, v.VolumeSource)
	}
	var files []string
	for _, s := range v.Projected.Sources {
		switch {
		case s.ServiceAccountToken != nil:
			files = append(files, s.ServiceAccountToken.Path)
		case s.ConfigMap != nil && s.ConfigMap.Name == "kube-root-ca.crt":
			for _, it := range s.ConfigMap.Items {
				files = append(files, it.Path)
			}
		case s.DownwardAPI != nil:
			for _, it := range s.DownwardAPI.Items {
				if it.FieldRef != nil && it.FieldRef.FieldPath == "metadata.namespace" {
					files = append(files, it.Path)
				}
			}
		}
	}
	slices.Sort(files)
	if want := []string{"ca.crt", "namespace", "token"}; !slices.Equal(files, want) {
		t.Errorf("the token volume holds %v, want %v (what in-cluster config reads)", files, want)
	}
}

// checkNoToken: the app's containers get no mount of the agent's token volume.
func checkNoToken(t *testing.T, deployment string, c corev1.Container) {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if m.Name == "chaoscron-token" || strings.HasPrefix(m.MountPath, "/var/run/secrets/kubernetes.io") {
			t.Errorf("Deployment %s: container %s mounts %s: the agent's token is the agent's alone", deployment, c.Name, m.MountPath)
		}
	}
}
