// Command kube-apiserver is the upstream Kubernetes API server, built from the Go module proxy
// so the fleet tests run against a real control plane (with etcd from Debian's etcd-server).
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
