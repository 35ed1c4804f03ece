package kube

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrUnavailable is wrapped by the errors of Etcd, APIServer and Kubectl when this machine
// lacks what a control plane needs (Debian's etcd-server, the Go toolchain, the module's
// sources). Tests skip on a laptop and fail under CI (see Require).
var ErrUnavailable = errors.New("kubernetes control plane unavailable")

// The environment variables that name prebuilt binaries. .ci/run builds the API server and
// kubectl before the tests, so no test builds inside its timeout.
const (
	EnvAPIServer = "CHAOSCRON_KUBE_APISERVER"
	EnvKubectl   = "CHAOSCRON_KUBECTL"
	EnvEtcd      = "CHAOSCRON_ETCD"
)

// Etcd finds the etcd server: $CHAOSCRON_ETCD, else etcd on PATH, else Debian's
// /usr/bin/etcd (package etcd-server).
func Etcd() (string, error) {
	if p := os.Getenv(EnvEtcd); p != "" {
		return p, executable(p)
	}
	if p, err := exec.LookPath("etcd"); err == nil {
		return p, nil
	}
	if err := executable("/usr/bin/etcd"); err != nil {
		return "", fmt.Errorf("%w: no etcd on PATH or at /usr/bin/etcd (Debian: apt-get install etcd-server)", ErrUnavailable)
	}
	return "/usr/bin/etcd", nil
}

// APIServer returns kube-apiserver: $CHAOSCRON_KUBE_APISERVER, else one built from the
// module in internal/kube/apiserver (see Build).
func APIServer(ctx context.Context) (string, error) {
	return tool(ctx, EnvAPIServer, "kube-apiserver", ".")
}

// Kubectl returns kubectl at the API server's release: $CHAOSCRON_KUBECTL, else one built
// from the same module. Not the machine's kubectl: a distribution's is of another release (or
// too old to know --validate=strict).
func Kubectl(ctx context.Context) (string, error) {
	return tool(ctx, EnvKubectl, "kubectl", "./kubectl")
}

func tool(ctx context.Context, env, name, pkg string) (string, error) {
	if p := os.Getenv(env); p != "" {
		return p, executable(p)
	}
	return Build(ctx, name, pkg)
}

func executable(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

// buildMu serialises builds within a process; the flock in Build serialises them across
// processes (go test ./... runs several test binaries at once, each may ask).
var buildMu sync.Mutex

// Build builds the command pkg ("." or "./kubectl") of the module in internal/kube/apiserver
// as name, into a directory under os.UserCacheDir() keyed by a hash of the module's files and
// the Go version, and returns its path. The first build on a machine takes minutes (170 MB of
// Kubernetes); later ones find the binary in place and return at once.
func Build(ctx context.Context, name, pkg string) (string, error) {
	mod, err := ModuleDir()
	if err != nil {
		return "", err
	}
	key, err := moduleKey(mod)
	if err != nil {
		return "", err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("%w: no cache directory: %v", ErrUnavailable, err)
	}
	dir := filepath.Join(cache, "chaoscron", "kube", key)
	bin := filepath.Join(dir, name)
	if executable(bin) == nil {
		return bin, nil
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("%w: building %s needs the go command: %v", ErrUnavailable, name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	unlock, err := lockFile(filepath.Join(dir, ".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if executable(bin) == nil { // built by another process while we waited
		return bin, nil
	}
	ver, err := kubernetesVersion(mod)
	if err != nil {
		return "", err
	}
	tmp := bin + ".tmp"
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", tmp, "-ldflags", versionFlags(ver), pkg)
	cmd.Dir = mod
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s in %s: %w\n%s", pkg, mod, err, out)
	}
	// A rename, so another process never sees half a binary.
	if err := os.Rename(tmp, bin); err != nil {
		return "", err
	}
	return bin, nil
}

// versionFlags stamps the release the way Kubernetes' own build does, so `kubectl version`
// and the API server's /version say v1.37.2 rather than v0.0.0-master.
func versionFlags(ver string) string {
	major, rest, _ := strings.Cut(strings.TrimPrefix(ver, "v"), ".")
	minor, _, _ := strings.Cut(rest, ".")
	var flags []string
	for _, p := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		flags = append(flags, "-X", p+".gitVersion="+ver, "-X", p+".gitMajor="+major, "-X", p+".gitMinor="+minor, "-X", p+".gitTreeState=clean")
	}
	return strings.Join(flags, " ")
}

// kubernetesVersion reads the required k8s.io/kubernetes version from the module's go.mod.
func kubernetesVersion(mod string) (string, error) {
	f, err := os.Open(filepath.Join(mod, "go.mod"))
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if w := strings.Fields(sc.Text()); len(w) >= 2 && w[0] == "k8s.io/kubernetes" && strings.HasPrefix(w[1], "v") {
			return w[1], nil
		}
	}
	return "", fmt.Errorf("%s/go.mod: no k8s.io/kubernetes requirement", mod)
}

// moduleKey hashes what the binaries are built from: go.mod, go.sum, the Go files, and the
// Go version (a new toolchain builds a new binary).
func moduleKey(mod string) (string, error) {
	h := sha256.New()
	io.WriteString(h, runtime.Version())
	var files []string
	err := filepath.WalkDir(mod, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if n := e.Name(); !e.IsDir() && (n == "go.mod" || n == "go.sum" || strings.HasSuffix(n, ".go")) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	slices.Sort(files)
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			return "", err
		}
		rel, _ := filepath.Rel(mod, p)
		fmt.Fprintf(h, "\x00%s\x00%d\x00", rel, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// ModuleDir is the directory of the module that builds kube-apiserver and kubectl. It is found
// from this source file, or failing that (a -trimpath build) from the main module's go.mod.
func ModuleDir() (string, error) {
	var roots []string
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		roots = append(roots, filepath.Dir(file))
	}
	if out, err := exec.Command("go", "env", "GOMOD").Output(); err == nil {
		if gomod := strings.TrimSpace(string(out)); filepath.IsAbs(gomod) {
			roots = append(roots, filepath.Join(filepath.Dir(gomod), "internal", "kube"))
		}
	}
	for _, r := range roots {
		d := filepath.Join(r, "apiserver")
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("%w: the module internal/kube/apiserver is not found (looked in %v)", ErrUnavailable, roots)
}

func lockFile(p string) (func(), error) {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	return func() { unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
}
