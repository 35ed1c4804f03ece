package kube_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/chaoscron/chaoscron/internal/kube"
)

func TestMain(m *testing.M) { os.Exit(kube.RunShared(m)) }

// agentClient is a clientset from the ServiceAccount kubeconfig file, as an agent would load
// it, and the namespace that file names.
func agentClient(t *testing.T, c *kube.Cluster, ns string) (*kubernetes.Clientset, string) {
	t.Helper()
	ctx := context.Background()
	r, err := c.ApplyFleetRBAC(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := c.ServiceAccountKubeconfig(ctx, ns, r.ServiceAccount.Name)
	if err != nil {
		t.Fatal(err)
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(&clientcmd.ClientConfigLoadingRules{ExplicitPath: kc}, nil)
	cfg, err := cc.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	kns, _, err := cc.Namespace()
	if err != nil {
		t.Fatal(err)
	}
	return kubernetes.NewForConfigOrDie(cfg), kns
}

func lease(name string) *coordinationv1.Lease {
	holder := "pod-0/1"
	return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder}}
}

// The agent's token may do what fleet mode needs, and nothing else: no pods, no secrets, no
// other namespace, nothing cluster-scoped.
func TestServiceAccountHasTheFleetRoleOnly(t *testing.T) {
	c := kube.Shared(t)
	ctx := context.Background()
	ns, other := c.Namespace(t), c.Namespace(t)
	agent, kns := agentClient(t, c, ns)
	if kns != ns {
		t.Errorf("the kubeconfig's namespace is %q, want %q", kns, ns)
	}
	// The same Role in the other namespace, bound to that namespace's ServiceAccount: it
	// must not let this one in.
	if _, err := c.ApplyFleetRBAC(ctx, other); err != nil {
		t.Fatal(err)
	}
	admin := c.Client()
	if _, err := admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CoordinationV1().Leases(other).Create(ctx, lease("theirs"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	leases := agent.CoordinationV1().Leases(ns)
	allowed := []struct {
		name string
		do   func() error
	}{
		{"create lease", func() error { _, err := leases.Create(ctx, lease("member"), metav1.CreateOptions{}); return err }},
		{"get lease", func() error { _, err := leases.Get(ctx, "member", metav1.GetOptions{}); return err }},
		{"update lease", func() error {
			l, err := leases.Get(ctx, "member", metav1.GetOptions{})
			if err != nil {
				return err
			}
			l.Annotations = map[string]string{"chaoscron.io/holders": "{}"}
			_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
			return err
		}},
		{"list leases", func() error {
			_, err := leases.List(ctx, metav1.ListOptions{LabelSelector: "chaoscron.io/group=web"})
			return err
		}},
		{"watch leases", func() error {
			w, err := leases.Watch(ctx, metav1.ListOptions{})
			if err == nil {
				w.Stop()
			}
			return err
		}},
		{"delete lease", func() error { return leases.Delete(ctx, "member", metav1.DeleteOptions{}) }},
		{"create event", func() error {
			_, err := agent.CoreV1().Events(ns).Create(ctx, &corev1.Event{
				ObjectMeta:     metav1.ObjectMeta{Name: "pod-0.1"},
				InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "pod-0"},
				Reason:         "Injected", Message: "test", Type: corev1.EventTypeNormal,
			}, metav1.CreateOptions{})
			return err
		}},
		{"patch event", func() error {
			_, err := agent.CoreV1().Events(ns).Patch(ctx, "pod-0.1", types.StrategicMergePatchType, []byte(`{"count":2}`), metav1.PatchOptions{})
			return err
		}},
		{"list pdbs", func() error {
			_, err := agent.PolicyV1().PodDisruptionBudgets(ns).List(ctx, metav1.ListOptions{})
			return err
		}},
	}
	for _, a := range allowed {
		if err := a.do(); err != nil {
			t.Errorf("%s: %v, want allowed", a.name, err)
		}
	}

	forbidden := []struct {
		name string
		do   func() error
	}{
		{"list pods", func() error { _, err := agent.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); return err }},
		{"get pod", func() error { _, err := agent.CoreV1().Pods(ns).Get(ctx, "pod-0", metav1.GetOptions{}); return err }},
		{"list secrets", func() error { _, err := agent.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); return err }},
		{"get secret", func() error { _, err := agent.CoreV1().Secrets(ns).Get(ctx, "s", metav1.GetOptions{}); return err }},
		{"patch lease", func() error {
			_, err := leases.Patch(ctx, "member", types.MergePatchType, []byte(`{}`), metav1.PatchOptions{})
			return err
		}},
		{"delete event", func() error { return agent.CoreV1().Events(ns).Delete(ctx, "pod-0.1", metav1.DeleteOptions{}) }},
		{"create configmap", func() error {
			_, err := agent.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
			return err
		}},
		{"list leases in another namespace", func() error {
			_, err := agent.CoordinationV1().Leases(other).List(ctx, metav1.ListOptions{})
			return err
		}},
		{"get a lease in another namespace", func() error {
			_, err := agent.CoordinationV1().Leases(other).Get(ctx, "theirs", metav1.GetOptions{})
			return err
		}},
		{"create a lease in another namespace", func() error {
			_, err := agent.CoordinationV1().Leases(other).Create(ctx, lease("mine"), metav1.CreateOptions{})
			return err
		}},
		{"list leases in all namespaces", func() error {
			_, err := agent.CoordinationV1().Leases("").List(ctx, metav1.ListOptions{})
			return err
		}},
		{"list namespaces", func() error { _, err := agent.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); return err }},
	}
	for _, f := range forbidden {
		if err := f.do(); !apierrors.IsForbidden(err) {
			t.Errorf("%s: %v, want forbidden", f.name, err)
		}
	}
}

// The API server killed and started again: same port, CA and keys, state kept in etcd, and a
// client from before (the agent's token) works again.
func TestAPIServerRestart(t *testing.T) {
	c := kube.Shared(t)
	ctx := context.Background()
	ns := c.Namespace(t)
	agent, _ := agentClient(t, c, ns)
	leases := agent.CoordinationV1().Leases(ns)
	if _, err := leases.Create(ctx, lease("before"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.KillAPIServer(); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err := leases.Get(short, "before", metav1.GetOptions{})
	cancel()
	if err == nil {
		t.Fatal("a request succeeded with the API server killed")
	}
	if err := c.KillAPIServer(); err == nil {
		t.Error("KillAPIServer of a dead API server: no error")
	}
	start := time.Now()
	if err := c.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("API server restarted in %v", time.Since(start).Round(time.Millisecond))
	l, err := leases.Get(ctx, "before", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	if *l.Spec.HolderIdentity != "pod-0/1" {
		t.Errorf("the lease came back as %+v", l.Spec)
	}
	if _, err := leases.Create(ctx, lease("after"), metav1.CreateOptions{}); err != nil {
		t.Errorf("after the restart: %v", err)
	}
	if err := c.StartAPIServer(ctx); err == nil {
		t.Error("StartAPIServer of a running API server: no error")
	}
}

// Requests (the API server's metrics) and Audit (its audit log, by user) both see an agent's
// requests; the audit log counts them exactly.
func TestRequestsAndAudit(t *testing.T) {
	c := kube.Shared(t)
	ctx := context.Background()
	ns := c.Namespace(t)
	agent, _ := agentClient(t, c, ns)
	leases := agent.CoordinationV1().Leases(ns)
	if _, err := leases.Create(ctx, lease("counted"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	before, err := c.Requests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 7
	for range n {
		if _, err := leases.Get(ctx, "counted", metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	after, err := c.Requests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d := after.Sub(before)
	gets := d.Sum(func(r kube.Request) bool { return r.Verb == "GET" && r.Resource == "leases" })
	if gets < n {
		t.Errorf("apiserver_request_total counted %v lease GETs, want at least %d (diff %v)", gets, n, d)
	}

	events, err := c.Audit()
	if err != nil {
		t.Fatal(err)
	}
	user := fmt.Sprintf("system:serviceaccount:%s:chaoscron", ns)
	got := kube.CountAudit(events, func(e kube.AuditEvent) bool {
		return e.User == user && e.Verb == "get" && e.Resource == "leases" && e.Name == "counted" && e.Code == 200
	})
	if got != n {
		t.Errorf("the audit log has %d lease gets by %s, want exactly %d", got, user, n)
	}
	creates := kube.CountAudit(events, func(e kube.AuditEvent) bool { return e.User == user && e.Verb == "create" })
	if creates != 1 {
		t.Errorf("the audit log has %d creates by %s, want 1", creates, user)
	}
}

// The harness binds agents to the component's Role, not to a Role of its own.
func TestFleetRBACIsTheComponent(t *testing.T) {
	r, err := kube.FleetRBAC()
	if err != nil {
		t.Fatal(err)
	}
	if r.RoleBinding.RoleRef.Name != r.Role.Name || len(r.RoleBinding.Subjects) != 1 || r.RoleBinding.Subjects[0].Name != r.ServiceAccount.Name {
		t.Errorf("the RoleBinding %+v does not bind Role %s to ServiceAccount %s", r.RoleBinding, r.Role.Name, r.ServiceAccount.Name)
	}
	var verbs []string
	for _, rule := range r.Role.Rules {
		verbs = append(verbs, strings.Join(rule.Resources, ",")+":"+strings.Join(rule.Verbs, ","))
	}
	if !strings.Contains(strings.Join(verbs, " "), "leases:") {
		t.Errorf("the Role's rules %v grant nothing on leases", verbs)
	}
}

// Deleting the ServiceAccount revokes its bound tokens (how a test revokes an agent's
// credentials): the API server answers 401 once its token cache (10 s) has let go.
func TestDeletedServiceAccountIsUnauthorized(t *testing.T) {
	c := kube.Shared(t)
	ctx := context.Background()
	ns := c.Namespace(t)
	agent, _ := agentClient(t, c, ns)
	if _, err := agent.CoordinationV1().Leases(ns).List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Client().CoreV1().ServiceAccounts(ns).Delete(ctx, "chaoscron", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	for {
		_, err := agent.CoordinationV1().Leases(ns).List(ctx, metav1.ListOptions{})
		if apierrors.IsUnauthorized(err) {
			t.Logf("unauthorized %v after the delete", time.Since(deleted).Round(100*time.Millisecond))
			return
		}
		if time.Since(deleted) > 30*time.Second {
			t.Fatalf("30 s after the ServiceAccount was deleted: %v, want unauthorized", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
