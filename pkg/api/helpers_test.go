package api_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/journal"
	"github.com/chaoscron/chaoscron/pkg/api"
	"github.com/chaoscron/chaoscron/pkg/config"
	"github.com/chaoscron/chaoscron/pkg/control"
	"github.com/chaoscron/chaoscron/pkg/fault"
	_ "github.com/chaoscron/chaoscron/pkg/fault/disk"
	"github.com/chaoscron/chaoscron/pkg/metrics"
	"github.com/chaoscron/chaoscron/pkg/runner"
)

// agent is a real runner over a real journal, with the disk fault filling a temp dir, and
// the three handlers the agent serves: the socket, the network with a token, the network
// without one.
type agent struct {
	t       testing.TB
	dir     string
	j       *journal.Journal
	r       *runner.Runner
	local   http.Handler
	network http.Handler // token "s3cret"
	noToken http.Handler
	m       *metrics.Set
}

const token = "s3cret"

const agentYAML = `
agent: {max_active: 2, listen: "off"}
experiments:
  - name: fill
    schedule: "@every 1h"
    duration: DURATION
    fault: {type: disk, path: DIR, size: 1MiB, reserve: 1MiB}
  - name: other
    schedule: "@every 1h"
    duration: 1s
    concurrency: allow
    fault: {type: disk, path: DIR, size: 1MiB, reserve: 1MiB}
`

func newAgent(t testing.TB, duration string) *agent {
	return newAgentYAML(t, strings.ReplaceAll(agentYAML, "DURATION", duration))
}

// newAgentYAML is newAgent with its own config; DIR stands for the disk fault's directory.
func newAgentYAML(t testing.TB, yaml string) *agent {
	a := &agent{t: t, dir: t.TempDir()}
	jp := filepath.Join(t.TempDir(), "j.db")
	yaml = strings.ReplaceAll(yaml, "DIR", a.dir)
	cfg, err := config.Parse([]byte(yaml), "test.yaml", map[string]any{"journal.path": jp})
	if err != nil {
		t.Fatal(err)
	}
	a.j, err = journal.Open(jp, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a.m = metrics.New("test")
	a.r, err = runner.New(runner.Options{Config: cfg, Journal: a.j, Metrics: a.m,
		Env: fault.Env{Self: os.Getpid()}, Agent: journal.Agent{Instance: "api-test", PID: os.Getpid()}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.r.Start(ctx)
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		_ = a.r.Shutdown(sctx)
		cancel()
		_ = a.j.Close()
	})
	opt := api.Options{Metrics: a.m.Handler(), Journal: a.j, Control: control.New(a.r)}
	opt.Local = true
	a.local = api.Handler(opt)
	opt.Local, opt.Token = false, token
	a.network = api.Handler(opt)
	opt.Token = ""
	a.noToken = api.Handler(opt)
	return a
}

// do sends one request to h and returns the status and body.
func do(h http.Handler, method, path, body string, header ...string) (int, string) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w.Code, w.Body.String()
}

func (a *agent) runs() []journal.Record {
	a.t.Helper()
	recs, err := a.j.List(journal.Filter{})
	if err != nil {
		a.t.Fatal(err)
	}
	return recs
}

func (a *agent) fills() []string {
	m, _ := filepath.Glob(filepath.Join(a.dir, ".chaoscron-fill-*"))
	return m
}
