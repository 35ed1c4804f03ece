// Package deploy holds chaoscron's deployment artefacts — the Kubernetes manifests (kustomize:
// components/sidecar, base, overlays, monitoring), the Prometheus rules, the Grafana dashboard —
// and the tests that keep them honest against the code: every kustomization builds and decodes
// strictly into the Kubernetes API types, the sidecar grants exactly the capabilities the faults
// need, the alert rules pass promtool, every metric they query is one the agent exports, the
// Dockerfile's build produces a static binary, and a pod is simulated with namespaces.
//
// There is no Go code here besides the tests.
package deploy
