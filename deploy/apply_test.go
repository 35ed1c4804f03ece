package deploy

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/chaoscron/chaoscron/internal/kube"
	"github.com/chaoscron/chaoscron/internal/testenv"
)

// Builds not applied, and why. Nothing else may be left out.
var notApplied = map[string]string{
	"monitoring": "PodMonitor and PrometheusRule are Prometheus Operator CRDs, not installed in the test API server",
}

// Every kustomization here, applied with `kubectl apply --server-side --validate=strict -k` to
// a real kube-apiserver (at the release of k8s.io/api): the API server's own schema and
// validation accept every object, an unknown field included. The Deployments are stored, not
// run (there is no kubelet).
func TestManifestsApply(t *testing.T) {
	ctx := context.Background()
	kubectl, err := kube.Kubectl(ctx)
	if errors.Is(err, kube.ErrUnavailable) {
		testenv.Require(t, false, err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	c := kube.ForTest(t)
	kc, err := c.AdminKubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	apply := func(t *testing.T, args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(kubectl, append([]string{"--kubeconfig", kc, "apply", "--server-side", "--validate=strict"}, args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	// The check is on: a field the API does not know is refused.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: bad\n  namespace: default\nautomountToken: true\n"), 0o600)
	if out, err := apply(t, "-f", bad); err == nil || !strings.Contains(out, "automountToken") {
		t.Fatalf("kubectl apply --validate=strict of an unknown field: %v\n%s", err, out)
	}

	builds, _ := kustomizations(t)
	for _, dir := range builds {
		if why, ok := notApplied[dir]; ok {
			t.Logf("%s not applied: %s", dir, why)
			continue
		}
		t.Run(dir, func(t *testing.T) {
			var k struct {
				Namespace string `json:"namespace"`
			}
			if err := readYAML(filepath.Join(dir, "kustomization.yaml"), &k); err != nil {
				t.Fatal(err)
			}
			args := []string{"-k", dir}
			ns := k.Namespace
			if ns == "" {
				ns = c.Namespace(t)
				args = append(args, "-n", ns)
			} else if err := c.CreateNamespace(ctx, ns); err != nil {
				t.Fatal(err)
			}
			out, err := apply(t, args...)
			if err != nil {
				t.Fatalf("kubectl apply %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			o := build(t, dir)
			cs := c.Client()
			for _, d := range o.deployments {
				if _, err := cs.AppsV1().Deployments(ns).Get(ctx, d.Name, metav1.GetOptions{}); err != nil {
					t.Errorf("after apply: %v", err)
				}
			}
			if len(o.roleBindings) > 0 {
				checkAppliedRBAC(t, c, ns, o)
			}
		})
	}
}

// checkAppliedRBAC: the RoleBinding as applied (its subject has no namespace) gives the
// ServiceAccount of the namespace it landed in the fleet's Leases, and not the pods.
func checkAppliedRBAC(t *testing.T, c *kube.Cluster, ns string, o *objects) {
	t.Helper()
	ctx := context.Background()
	cfg, err := c.ServiceAccountConfig(ctx, ns, o.serviceAccounts[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	agent := kubernetes.NewForConfigOrDie(cfg)
	if _, err := agent.CoordinationV1().Leases(ns).Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "chaoscron-web-slots"}}, metav1.CreateOptions{}); err != nil {
		t.Errorf("the applied ServiceAccount cannot create a Lease in %s: %v", ns, err)
	}
	if _, err := agent.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the applied ServiceAccount lists pods: %v, want forbidden", err)
	}
}
