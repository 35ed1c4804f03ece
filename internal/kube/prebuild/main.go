// Command prebuild builds kube-apiserver and kubectl (internal/kube/apiserver) into the
// per-machine cache, if they are not there yet, checks that etcd is installed, and prints the
// shell exports that point the tests at them:
//
//	exports=$(go run ./internal/kube/prebuild) && eval "$exports"
//
// CI runs it before `go test ./...`, so the first build (minutes, on two cores) never counts
// against a test's timeout.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/chaoscron/chaoscron/internal/kube"
)

func main() {
	ctx := context.Background()
	etcd, err := kube.Etcd()
	if err != nil {
		fail(err)
	}
	start := time.Now()
	api, err := kube.APIServer(ctx)
	if err != nil {
		fail(err)
	}
	kubectl, err := kube.Kubectl(ctx)
	if err != nil {
		fail(err)
	}
	fmt.Fprintf(os.Stderr, "kube-apiserver and kubectl ready in %v\n", time.Since(start).Round(time.Second))
	for _, kv := range [][2]string{{kube.EnvEtcd, etcd}, {kube.EnvAPIServer, api}, {kube.EnvKubectl, kubectl}} {
		fmt.Printf("export %s=%s\n", kv[0], shellQuote(kv[1]))
	}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func fail(err error) {
	fmt.Fprintln(os.Stderr, "prebuild:", err)
	os.Exit(1)
}
