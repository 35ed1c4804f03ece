// Command kubectl is the upstream Kubernetes client at the API server's release, built from
// the Go module proxy: the deploy tests apply the manifests with it to the API server built
// beside it (a distribution's kubectl is too old or of unknown provenance).
package main

import (
	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	if err := cli.RunNoErrOutput(cmd.NewDefaultKubectlCommand()); err != nil {
		util.CheckErr(err)
	}
}
