package kube

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Cluster is a control plane of one etcd and one kube-apiserver on loopback, with its files
// (keys, tokens, logs, etcd's data, kubeconfigs) in one directory. There is no kubelet,
// scheduler or controller manager: objects are stored and served, pods never run, and a
// deleted namespace stays Terminating. It costs ~5 s to start and ~400 MB of memory.
type Cluster struct {
	Dir string // everything the cluster writes

	etcdURL string
	apiPort int
	token   string // the admin's bearer token (system:masters)
	apiBin  string
	apiArgs []string

	mu     sync.Mutex
	etcd   *proc
	api    *proc
	caData []byte // the API server's self-signed CA: set by the first start, then constant
}

// Options change how the control plane is started. The zero value is what Start uses.
type Options struct {
	// NoAudit turns the API server's audit log off (Audit then fails). The log is written
	// before each response, which adds a little to every request's latency.
	NoAudit bool
	// APIServerArgs are added to kube-apiserver's command line (e.g. --feature-gates=…).
	APIServerArgs []string
}

// StartTimeout bounds the wait for etcd's /health and the API server's /readyz. Generous:
// the machine is shared, and a start is ~5 s when it is not.
const StartTimeout = 90 * time.Second

// Start starts etcd and kube-apiserver with their files in dir (which must exist; a test's
// t.TempDir() is the usual one) and returns when the API server answers /readyz. Stop it
// with Stop. The binaries are found (or built) by Etcd and APIServer.
func Start(ctx context.Context, dir string) (*Cluster, error) {
	return StartWith(ctx, dir, Options{})
}

// StartWith is Start with options.
func StartWith(ctx context.Context, dir string, opts Options) (*Cluster, error) {
	etcdBin, err := Etcd()
	if err != nil {
		return nil, err
	}
	apiBin, err := APIServer(ctx)
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, apiBin: apiBin, apiPort: ports[2]}
	c.etcdURL = fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	if err := c.writeFiles(opts); err != nil {
		return nil, err
	}

	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	c.etcd, err = startProc(filepath.Join(dir, "etcd.log"), etcdBin,
		"--name=default",
		"--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+c.etcdURL, "--advertise-client-urls="+c.etcdURL,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=default="+peer,
		"--log-level=warn", "--logger=zap")
	if err != nil {
		return nil, err
	}
	if err := c.waitEtcd(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	if err := c.StartAPIServer(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// writeFiles writes the token file, the service account key and the audit policy.
func (c *Cluster) writeFiles(opts Options) error {
	tok := make([]byte, 16)
	rand.Read(tok)
	c.token = hex.EncodeToString(tok)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	files := map[string][]byte{
		"tokens.csv":  []byte(c.token + ",admin,admin,system:masters\n"),
		"sa.key":      keyPEM,
		"audit.yaml":  []byte(auditPolicy),
		"certs/.keep": nil,
	}
	for name, b := range files {
		p := filepath.Join(c.Dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			return err
		}
	}
	d := c.Dir
	c.apiArgs = []string{
		"--etcd-servers=" + c.etcdURL,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(c.apiPort),
		"--cert-dir=" + filepath.Join(d, "certs"),
		"--token-auth-file=" + filepath.Join(d, "tokens.csv"),
		"--service-account-key-file=" + filepath.Join(d, "sa.key"),
		"--service-account-signing-key-file=" + filepath.Join(d, "sa.key"),
		"--service-account-issuer=https://kubernetes.default.svc",
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.96.0.0/24",
		"--profiling=false",
		"-v=1",
	}
	if !opts.NoAudit {
		c.apiArgs = append(c.apiArgs,
			"--audit-policy-file="+filepath.Join(d, "audit.yaml"),
			"--audit-log-path="+filepath.Join(d, "audit.log"),
			"--audit-log-format=json",
			"--audit-log-mode=blocking", // written before the response: a test reads it right after
		)
	}
	c.apiArgs = append(c.apiArgs, opts.APIServerArgs...)
	return nil
}

// StartAPIServer starts kube-apiserver (again) on the same etcd, port, keys and certificates,
// and waits for /readyz: the objects, tokens and kubeconfigs of before work again.
func (c *Cluster) StartAPIServer(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.api != nil && !c.api.exited() {
		return errors.New("the API server is already running")
	}
	p, err := startProc(filepath.Join(c.Dir, "apiserver.log"), c.apiBin, c.apiArgs...)
	if err != nil {
		return err
	}
	c.api = p
	if err := c.waitReady(ctx, p); err != nil {
		p.kill()
		return err
	}
	return nil
}

// KillAPIServer SIGKILLs kube-apiserver and waits for it to exit; etcd keeps running.
func (c *Cluster) KillAPIServer() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.api == nil || c.api.exited() {
		return errors.New("the API server is not running")
	}
	c.api.kill()
	return nil
}

// Stop kills the API server and etcd. It may be called more than once.
func (c *Cluster) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range []*proc{c.api, c.etcd} {
		if p != nil {
			p.kill()
		}
	}
}

// URL is the API server's https URL.
func (c *Cluster) URL() string { return fmt.Sprintf("https://127.0.0.1:%d", c.apiPort) }

// CA is the PEM of the API server's self-signed serving CA. It is read on the first start
// and never changes (restarts reuse the cert dir), so it needs no lock.
func (c *Cluster) CA() []byte { return c.caData }

// Admin is a client config for the admin (group system:masters), with a rate limit raised
// for tests (client-go's default of 5 QPS makes a test of many objects slow).
func (c *Cluster) Admin() *rest.Config {
	return &rest.Config{
		Host:            c.URL(),
		BearerToken:     c.token,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.CA()},
		QPS:             100,
		Burst:           200,
	}
}

// Client is a clientset on Admin().
func (c *Cluster) Client() *kubernetes.Clientset {
	return kubernetes.NewForConfigOrDie(c.Admin())
}

func (c *Cluster) waitEtcd(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	hc := &http.Client{Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	for {
		resp, err := hc.Get(c.etcdURL + "/health")
		if err == nil {
			var b bytes.Buffer
			b.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && bytes.Contains(b.Bytes(), []byte(`"true"`)) {
				return nil
			}
		}
		if err := c.etcd.wait(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("etcd on %s: %w", c.etcdURL, err)
		}
	}
}

// waitReady polls /readyz until "ok". The CA is read from the cert dir once the API server has
// written it (on its first start; later starts reuse it).
func (c *Cluster) waitReady(ctx context.Context, p *proc) error {
	ctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	var last string
	for {
		if c.caData == nil {
			if b, err := os.ReadFile(filepath.Join(c.Dir, "certs", "apiserver.crt")); err == nil {
				c.caData = b
			}
		}
		if c.caData != nil {
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(c.caData)
			hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.URL()+"/readyz", nil)
			req.Header.Set("Authorization", "Bearer "+c.token)
			resp, err := hc.Do(req)
			hc.CloseIdleConnections()
			if err == nil {
				var b bytes.Buffer
				b.ReadFrom(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK && b.String() == "ok" {
					return nil
				}
				last = fmt.Sprintf("%s: %s", resp.Status, b.Bytes())
			} else {
				last = err.Error()
			}
		}
		if err := p.wait(ctx, 200*time.Millisecond); err != nil {
			return fmt.Errorf("kube-apiserver on %s: %w (last /readyz: %s)", c.URL(), err, last)
		}
	}
}

// proc is a started process and its log.
type proc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func startProc(logPath, bin string, args ...string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fmt.Fprintf(f, "=== %s start %s\n", time.Now().Format(time.RFC3339Nano), bin)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// Killed with the test binary, however it dies: a crashed test must not leave a 400 MB
	// control plane behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := spawn(cmd); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &proc{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// spawner starts processes from one goroutine locked to its thread for good. Pdeathsig fires
// when the thread that forked the child exits, not the process, and the Go runtime ends a
// thread whose locked goroutine returns without unlocking (tests that enter namespaces do
// that on purpose): a child forked from such a thread would be killed with it.
var spawner = sync.OnceValue(func() chan spawnReq {
	ch := make(chan spawnReq)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread lives as long as the process
		for r := range ch {
			r.done <- r.cmd.Start()
		}
	}()
	return ch
})

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

func spawn(cmd *exec.Cmd) error {
	r := spawnReq{cmd: cmd, done: make(chan error)}
	spawner() <- r
	return <-r.done
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait sleeps d, and fails if the process exits (with its log's tail) or ctx ends first.
func (p *proc) wait(ctx context.Context, d time.Duration) error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited (%v); the end of %s:\n%s", filepath.Base(p.cmd.Path), p.err, p.log, tail(p.log, 30))
	case <-ctx.Done():
		return fmt.Errorf("not ready: %w; the end of %s:\n%s", ctx.Err(), p.log, tail(p.log, 30))
	case <-time.After(d):
		return nil
	}
}

func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

func tail(path string, lines int) string {
	b, _ := os.ReadFile(path)
	ls := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return string(bytes.Join(ls, []byte("\n")))
}

// freePorts finds n free loopback ports, holding them all open at once so they differ.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
