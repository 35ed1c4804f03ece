// Package kube runs a real Kubernetes control plane for tests and the benchmark: etcd (Debian's
// etcd-server) and kube-apiserver v1.37.2 (built from the Go module proxy by the module in
// ./apiserver, kept out of the product's go.mod), on loopback ports, RBAC on, token
// authentication for an admin, and a service account signing key, so bound ServiceAccount
// tokens work. There is no kubelet, scheduler or controller manager: objects are stored,
// validated, authorized and watched, but pods never run.
//
//	c := kube.ForTest(t)                       // or kube.Shared(t) with kube.RunShared in TestMain
//	ns := c.Namespace(t)
//	rbac, _ := c.ApplyFleetRBAC(ctx, ns)       // the Role deploy/components/fleet ships
//	kc, _ := c.ServiceAccountKubeconfig(ctx, ns, rbac.ServiceAccount.Name)
//	// run an agent with KUBECONFIG=kc: it has the agent's permissions and nothing more
//	c.KillAPIServer()                          // etcd keeps the state…
//	c.StartAPIServer(ctx)                      // …and the same port, CA and tokens work again
//
// The binaries: etcd from $CHAOSCRON_ETCD or PATH or /usr/bin/etcd; kube-apiserver and kubectl
// from $CHAOSCRON_KUBE_APISERVER and $CHAOSCRON_KUBECTL, else built once per machine into
// os.UserCacheDir()/chaoscron/kube/<hash of the module>/ (the first build takes minutes; CI
// builds them before the tests). Without them a test skips on a laptop and fails under CI.
package kube
