package fleet

import (
	"fmt"
	"os"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/chaoscron/chaoscron/pkg/config"
)

// QPS and Burst are an agent's client-side limit on its requests to the API server. An idle
// agent makes one request per renew; the burst covers a busy tick's takes and their retries.
const (
	QPS   = 20
	Burst = 40
)

// Client returns a clientset for cfg — the ServiceAccount's credentials in a pod, else the
// kubeconfig (fleet.kubeconfig, $KUBECONFIG, ~/.kube/config) — and the namespace those
// credentials imply ("" if none).
func Client(cfg config.Fleet, userAgent string) (*API, string, error) {
	var rc *rest.Config
	var ns string
	if cfg.Kubeconfig == "" && config.InCluster() {
		c, err := rest.InClusterConfig()
		if err != nil {
			return nil, "", fmt.Errorf("fleet: in-cluster credentials: %w", err)
		}
		rc = c
		if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil {
			ns = strings.TrimSpace(string(b))
		}
	} else {
		path := cfg.FleetKubeconfig()
		if path == "" {
			return nil, "", fmt.Errorf("fleet: no credentials: not in a pod, and no kubeconfig (fleet.kubeconfig, $KUBECONFIG, ~/.kube/config)")
		}
		cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
			&clientcmd.ClientConfigLoadingRules{ExplicitPath: path}, &clientcmd.ConfigOverrides{})
		c, err := cc.ClientConfig()
		if err != nil {
			return nil, "", fmt.Errorf("fleet: kubeconfig %s: %w", path, err)
		}
		rc = c
		ns, _, _ = cc.Namespace()
	}
	rc.UserAgent = userAgent
	rc.QPS, rc.Burst = QPS, Burst
	cs, err := NewAPI(rc)
	if err != nil {
		return nil, "", fmt.Errorf("fleet: client: %w", err)
	}
	return cs, ns, nil
}
