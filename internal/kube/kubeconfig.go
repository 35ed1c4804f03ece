package kube

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// AdminKubeconfig writes (once; it never changes) a kubeconfig for the admin and returns its
// path: for kubectl and for an operator's `chaoscron fleet halt`.
func (c *Cluster) AdminKubeconfig() (string, error) {
	p := filepath.Join(c.Dir, "admin.kubeconfig")
	return p, c.writeKubeconfig(p, "admin", c.token, "default")
}

// TokenTTL is the lifetime asked of the ServiceAccount tokens: longer than any test.
const TokenTTL = 2 * time.Hour

// ServiceAccountToken asks the API server (TokenRequest, as the kubelet does for a pod) for a
// bound token of the ServiceAccount namespace/sa, which must exist.
func (c *Cluster) ServiceAccountToken(ctx context.Context, namespace, sa string) (string, error) {
	ttl := int64(TokenTTL / time.Second)
	tr, err := c.Client().CoreV1().ServiceAccounts(namespace).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &ttl},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for serviceaccount %s/%s: %w", namespace, sa, err)
	}
	return tr.Status.Token, nil
}

// ServiceAccountKubeconfig writes a kubeconfig that authenticates as the ServiceAccount
// namespace/sa with a bound token, its context's namespace set to namespace, and returns its
// path. An agent run with it has exactly the permissions bound to that ServiceAccount (see
// ApplyFleetRBAC), never an admin's. Deleting the ServiceAccount revokes the token, once the
// API server's token cache lets go of it (up to 10 s).
func (c *Cluster) ServiceAccountKubeconfig(ctx context.Context, namespace, sa string) (string, error) {
	tok, err := c.ServiceAccountToken(ctx, namespace, sa)
	if err != nil {
		return "", err
	}
	p := filepath.Join(c.Dir, fmt.Sprintf("sa-%s-%s.kubeconfig", namespace, sa))
	return p, c.writeKubeconfig(p, "system:serviceaccount:"+namespace+":"+sa, tok, namespace)
}

// ServiceAccountConfig is a client config as the ServiceAccount namespace/sa (a new token).
func (c *Cluster) ServiceAccountConfig(ctx context.Context, namespace, sa string) (*rest.Config, error) {
	tok, err := c.ServiceAccountToken(ctx, namespace, sa)
	if err != nil {
		return nil, err
	}
	return &rest.Config{Host: c.URL(), BearerToken: tok, TLSClientConfig: rest.TLSClientConfig{CAData: c.CA()}}, nil
}

func (c *Cluster) writeKubeconfig(path, user, token, namespace string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["chaoscron-test"] = &clientcmdapi.Cluster{Server: c.URL(), CertificateAuthorityData: c.CA()}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["chaoscron-test"] = &clientcmdapi.Context{Cluster: "chaoscron-test", AuthInfo: user, Namespace: namespace}
	cfg.CurrentContext = "chaoscron-test"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return nil
}
