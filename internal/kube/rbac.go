package kube

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// RBAC is what deploy/components/fleet grants the agent.
type RBAC struct {
	ServiceAccount corev1.ServiceAccount
	Role           rbacv1.Role
	RoleBinding    rbacv1.RoleBinding
}

// FleetRBAC builds deploy/components/fleet with kustomize (as kubectl -k would, default load
// restrictor) and returns its ServiceAccount, Role and RoleBinding, decoded strictly: the
// tests run agents under the very Role that ships, not a copy of it.
func FleetRBAC() (*RBAC, error) {
	mod, err := ModuleDir()
	if err != nil {
		return nil, err
	}
	component := filepath.Clean(filepath.Join(mod, "..", "..", "..", "deploy", "components", "fleet"))
	// A component builds only inside a kustomization: a throw-away one that lists it alone
	// (its Deployment patches then have nothing to patch).
	dir, err := os.MkdirTemp("", "chaoscron-rbac")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	rel, err := filepath.Rel(dir, component) // kustomize refuses an absolute path
	if err != nil {
		return nil, err
	}
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\ncomponents:\n  - " + rel + "\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o600); err != nil {
		return nil, err
	}
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", component, err)
	}
	var r RBAC
	found := map[string]int{}
	for _, res := range m.Resources() {
		y, err := res.AsYAML()
		if err != nil {
			return nil, err
		}
		var into any
		switch res.GetKind() {
		case "ServiceAccount":
			into = &r.ServiceAccount
		case "Role":
			into = &r.Role
		case "RoleBinding":
			into = &r.RoleBinding
		default:
			return nil, fmt.Errorf("%s: unexpected %s/%s", component, res.GetKind(), res.GetName())
		}
		found[res.GetKind()]++
		if err := yaml.UnmarshalStrict(y, into); err != nil {
			return nil, fmt.Errorf("%s: %s/%s: %w", component, res.GetKind(), res.GetName(), err)
		}
	}
	for _, kind := range []string{"ServiceAccount", "Role", "RoleBinding"} {
		if found[kind] != 1 {
			return nil, fmt.Errorf("%s: %d %s objects, want 1", component, found[kind], kind)
		}
	}
	return &r, nil
}

// ApplyFleetRBAC creates the namespace (if need be) and the fleet component's ServiceAccount,
// Role and RoleBinding in it, and returns them. A ServiceAccountKubeconfig for
// r.ServiceAccount.Name then has exactly the agent's permissions.
func (c *Cluster) ApplyFleetRBAC(ctx context.Context, namespace string) (*RBAC, error) {
	r, err := FleetRBAC()
	if err != nil {
		return nil, err
	}
	if err := c.CreateNamespace(ctx, namespace); err != nil {
		return nil, err
	}
	cs := c.Client()
	opts := metav1.CreateOptions{FieldValidation: "Strict"}
	r.ServiceAccount.Namespace, r.Role.Namespace, r.RoleBinding.Namespace = namespace, namespace, namespace
	sa, err := cs.CoreV1().ServiceAccounts(namespace).Create(ctx, &r.ServiceAccount, opts)
	if err != nil {
		return nil, fmt.Errorf("create serviceaccount: %w", err)
	}
	role, err := cs.RbacV1().Roles(namespace).Create(ctx, &r.Role, opts)
	if err != nil {
		return nil, fmt.Errorf("create role: %w", err)
	}
	rb, err := cs.RbacV1().RoleBindings(namespace).Create(ctx, &r.RoleBinding, opts)
	if err != nil {
		return nil, fmt.Errorf("create rolebinding: %w", err)
	}
	return &RBAC{ServiceAccount: *sa, Role: *role, RoleBinding: *rb}, nil
}

// CreateNamespace creates the namespace name; one that exists already is fine.
func (c *Cluster) CreateNamespace(ctx context.Context, name string) error {
	_, err := c.Client().CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}
