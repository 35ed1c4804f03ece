package deploy

import (
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/chaoscron/chaoscron/pkg/config"
	_ "github.com/chaoscron/chaoscron/pkg/fault/all" // config validation checks fault parameters
)

// checkSidecar asserts everything the agent needs from its pod, against the config the
// ConfigMap really carries, and returns that config.
func checkSidecar(t *testing.T, d *appsv1.Deployment, o *objects, caps []string, dryRun bool) *config.Config {
	pod := &d.Spec.Template.Spec
	if pod.ShareProcessNamespace == nil || !*pod.ShareProcessNamespace {
		t.Error("shareProcessNamespace is not true: the agent cannot see the app's processes")
	}
	if g := pod.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second < shutdownBound+exitMargin {
		t.Errorf("terminationGracePeriodSeconds %v: must be at least %v (the agent's shutdown bound) + %v", g, shutdownBound, exitMargin)
	}
	if d.Spec.Template.Labels["chaoscron.io/sidecar"] != "true" {
		t.Error("the pod template lacks the label chaoscron.io/sidecar=true the PodMonitor selects")
	}
	i := slices.IndexFunc(pod.Containers, func(c corev1.Container) bool { return c.Name == sidecarName })
	if i < 0 {
		t.Fatalf("no %s container in %v", sidecarName, pod.Containers)
	}
	c := &pod.Containers[i]
	if len(pod.Containers) < 2 {
		t.Error("the app's container is gone")
	}
	// kubectl logs/exec without -c must reach the app, not the agent.
	def := d.Spec.Template.Annotations["kubectl.kubernetes.io/default-container"]
	if def == "" {
		def = pod.Containers[0].Name
	}
	if def == sidecarName {
		t.Error("kubectl's default container is chaoscron, not the app")
	}

	// The image's entrypoint with the image's CMD, so the manifest and the Dockerfile agree.
	df, err := readDockerfile(repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Command) != 0 || !slices.Equal(c.Args, df.cmd) {
		t.Errorf("command %q args %q, want the image's entrypoint with args %q (the Dockerfile's CMD)", c.Command, c.Args, df.cmd)
	}

	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil {
		t.Fatal("no securityContext.capabilities")
	}
	if got := capNames(sc.Capabilities.Drop); !slices.Equal(got, []string{"ALL"}) {
		t.Errorf("capabilities.drop %v, want [ALL]", got)
	}
	if got := capNames(sc.Capabilities.Add); !slices.Equal(got, caps) {
		t.Errorf("capabilities.add %v, want exactly %v", got, caps)
	}
	if !isTrue(sc.ReadOnlyRootFilesystem) {
		t.Error("readOnlyRootFilesystem is not true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation is not false")
	}
	if isTrue(sc.Privileged) {
		t.Error("privileged")
	}
	// uid 0 explicitly, and runAsNonRoot explicitly false, so a pod-level runAsNonRoot: true
	// (the example app sets one) does not keep the sidecar from starting.
	if sc.RunAsUser == nil || *sc.RunAsUser != 0 || sc.RunAsNonRoot == nil || *sc.RunAsNonRoot {
		t.Errorf("runAsUser %v runAsNonRoot %v: want 0 and false, explicitly", ptrStr(sc.RunAsUser), ptrStr(sc.RunAsNonRoot))
	}
	if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("seccompProfile is not RuntimeDefault")
	}

	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, hasReq := c.Resources.Requests[r]
		lim, hasLim := c.Resources.Limits[r]
		if !hasReq || !hasLim || req.Cmp(lim) > 0 {
			t.Errorf("resources %s: request %v limit %v, want both, request <= limit", r, req.String(), lim.String())
		}
	}

	// The config, as the agent will load it: the file named by -c, from the volume mounted
	// there, from the ConfigMap that volume names, with the container's environment applied.
	cfgPath := c.Args[slices.Index(c.Args, "-c")+1]
	mount, vol := mountFor(t, c, pod, cfgPath)
	if vol.ConfigMap == nil || !mount.ReadOnly {
		t.Fatalf("%s is not on a read-only ConfigMap volume: %+v", cfgPath, vol)
	}
	cm, ok := o.configMaps[vol.ConfigMap.Name]
	if !ok {
		t.Fatalf("volume %s names ConfigMap %s, which the build does not contain (have %v)", vol.Name, vol.ConfigMap.Name, slices.Sorted(maps.Keys(o.configMaps)))
	}
	data, ok := cm.Data[strings.TrimPrefix(strings.TrimPrefix(cfgPath, mount.MountPath), "/")]
	if !ok {
		t.Fatalf("ConfigMap %s has no key for %s (keys %v)", cm.Name, cfgPath, slices.Sorted(maps.Keys(cm.Data)))
	}
	cfg := loadConfig(t, data, c.Env, d.Spec.Template.Labels)
	if cfg.Agent.DryRun != dryRun {
		t.Errorf("agent.dry_run = %v with the container's environment, want %v", cfg.Agent.DryRun, dryRun)
	}

	// The journal lives on an emptyDir: it survives a restart of the container, which is
	// when it is needed, and goes with the pod, as do the faults it records.
	jmount, jvol := mountFor(t, c, pod, cfg.Journal.Path)
	if jvol.EmptyDir == nil || jmount.ReadOnly {
		t.Errorf("the journal %s is on volume %s, which is not a writable emptyDir: %+v", cfg.Journal.Path, jvol.Name, jvol.VolumeSource)
	} else if jvol.EmptyDir.SizeLimit == nil {
		t.Errorf("the journal's emptyDir has no sizeLimit")
	}
	if jmount.MountPath != "/var/lib/chaoscron" {
		t.Errorf("the journal volume is mounted at %s; the docs say /var/lib/chaoscron", jmount.MountPath)
	}
	// `kubectl exec … -- chaoscron journal list`, with no flags, reads the journal named by
	// the container's environment: it must be the agent's.
	if i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "CHAOSCRON_JOURNAL__PATH" }); i < 0 || c.Env[i].Value != cfg.Journal.Path {
		t.Errorf("CHAOSCRON_JOURNAL__PATH is not set to the agent's journal %s: journal commands in the container would not find it", cfg.Journal.Path)
	}

	// Prometheus scrapes the pod's IP, not loopback: the agent listens on every address.
	host, portStr, err := net.SplitHostPort(cfg.Agent.Listen)
	if err != nil {
		t.Fatalf("agent.listen %q: %v", cfg.Agent.Listen, err)
	}
	if host != "" && host != "0.0.0.0" && host != "::" {
		t.Errorf("agent.listen %q: Prometheus cannot reach %s", cfg.Agent.Listen, host)
	}
	if listen, _ := strconv.Atoi(portStr); listen != 8000 {
		t.Errorf("agent.listen %q: the docs and the PodMonitor say :8000", cfg.Agent.Listen)
	}
	// The probes exec the agent's binary, which asks over the socket beside the journal:
	// nothing outside the pod can make them fail (pod_test.go runs the same command).
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		want  []string
	}{{"liveness", c.LivenessProbe, []string{"/chaoscron", "probe", "live"}}, {"readiness", c.ReadinessProbe, []string{"/chaoscron", "probe", "ready"}}} {
		if p.probe == nil || p.probe.Exec == nil {
			t.Errorf("no %s exec probe: an HTTP probe on agent.listen can be failed from outside the pod", p.name)
			continue
		}
		if !slices.Equal(p.probe.Exec.Command, p.want) {
			t.Errorf("%s probe runs %q, want %q", p.name, p.probe.Exec.Command, p.want)
		}
	}
	return cfg
}

// mountFor finds the container's mount holding file and its volume.
func mountFor(t *testing.T, c *corev1.Container, pod *corev1.PodSpec, file string) (corev1.VolumeMount, corev1.Volume) {
	t.Helper()
	var best corev1.VolumeMount
	for _, m := range c.VolumeMounts {
		if strings.HasPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/") && len(m.MountPath) > len(best.MountPath) {
			best = m
		}
	}
	if best.Name == "" {
		t.Fatalf("no volume is mounted where %s is (mounts %+v)", file, c.VolumeMounts)
	}
	i := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == best.Name })
	if i < 0 {
		t.Fatalf("mount %s names volume %s, which the pod lacks", best.MountPath, best.Name)
	}
	return best, pod.Volumes[i]
}

// loadConfig loads a config the way the agent in the container does: the file, then the
// CHAOSCRON_* environment, with downward API values resolved for a pod with these labels.
// Strict: unknown keys and invalid values fail.
func loadConfig(t *testing.T, data string, env []corev1.EnvVar, labels map[string]string) *config.Config {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "CHAOSCRON_") {
			t.Setenv(k, "") // set for t's duration, restored after…
			os.Unsetenv(k)  // …and absent meanwhile: only the container's environment counts
		}
	}
	for _, e := range env {
		if strings.HasPrefix(e.Name, "CHAOSCRON_FLEET__") && !configKnows("fleet") {
			// pkg/config's fleet section lands with the fleet core; until it does, the
			// fleet variables are checked as written (TestFleetComponent).
			continue
		}
		v := e.Value
		if e.ValueFrom != nil {
			v = downwardValue(t, e, labels)
		}
		t.Setenv(e.Name, v)
		if e.Name == "CHAOSCRON_FLEET__ENABLED" && v == "true" {
			// Fleet mode needs credentials: in the pod, the ServiceAccount's at the in-cluster
			// path (TestFleetComponent checks the mount); here a kubeconfig stands in for them.
			kc := filepath.Join(t.TempDir(), "kubeconfig")
			if err := os.WriteFile(kc, []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv("KUBECONFIG", kc)
		}
	}
	cfg, err := config.Load(p, nil)
	if err != nil {
		t.Fatalf("the sidecar's config does not load: %v", err)
	}
	return cfg
}

// downwardValue is what the kubelet would set e to in a pod with these labels: the fieldRefs
// the manifests use, with a made-up pod name and uid.
func downwardValue(t *testing.T, e corev1.EnvVar, labels map[string]string) string {
	t.Helper()
	f := e.ValueFrom.FieldRef
	if f == nil {
		t.Fatalf("env %s comes from %v; this test knows only literal values and fieldRefs", e.Name, e.ValueFrom)
	}
	switch p := f.FieldPath; {
	case p == "metadata.name":
		return "web-5d9c7b6f4-x2k8q"
	case p == "metadata.namespace":
		return "chaoscron-demo"
	case p == "metadata.uid":
		return "6f1c2d9e-3b4a-4c5d-8e7f-0a1b2c3d4e5f"
	case strings.HasPrefix(p, "metadata.labels['") && strings.HasSuffix(p, "']"):
		k := strings.TrimSuffix(strings.TrimPrefix(p, "metadata.labels['"), "']")
		v, ok := labels[k]
		if !ok {
			t.Errorf("env %s is the pod label %s, which the pod template lacks (labels %v)", e.Name, k, labels)
		}
		return v
	}
	t.Fatalf("env %s: fieldPath %s is not one this test knows", e.Name, f.FieldPath)
	return ""
}

// configKnows reports whether config.Config has the top-level section key.
func configKnows(key string) bool {
	ty := reflect.TypeFor[config.Config]()
	for i := range ty.NumField() {
		if ty.Field(i).Tag.Get("koanf") == key {
			return true
		}
	}
	return false
}

func resolvePort(c *corev1.Container, p intstr.IntOrString) int {
	if p.Type == intstr.Int {
		return p.IntValue()
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort)
		}
	}
	return -1
}

func capNames(cs []corev1.Capability) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = string(c)
	}
	sort.Strings(out)
	return out
}

func isTrue(b *bool) bool { return b != nil && *b }

func ptrStr[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}
