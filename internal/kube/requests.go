package kube

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Request is a kind of API request as the API server's apiserver_request_total labels it.
type Request struct {
	Verb        string // GET, LIST, WATCH, CREATE, UPDATE, PATCH, DELETE, … (upper case)
	Group       string // "" for core
	Resource    string // leases, events, …
	Subresource string
}

// Requests counts API requests by kind.
type Requests map[Request]float64

// Requests reads apiserver_request_total from the API server's /metrics, summed over the
// labels Request does not name (code, scope, version, component, dry_run). The API server's
// own loopback requests are counted too (its identity Lease in kube-system, every 10 s):
// compare two snapshots with Sub, with a baseline, or use Audit, which names the user.
// A watch is counted when it ends.
func (c *Cluster) Requests(ctx context.Context) (Requests, error) {
	b, err := c.Client().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("get /metrics: %w", err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("parse /metrics: %w", err)
	}
	out := Requests{}
	fam, ok := fams["apiserver_request_total"]
	if !ok {
		return nil, fmt.Errorf("/metrics has no apiserver_request_total")
	}
	for _, m := range fam.GetMetric() {
		var r Request
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "verb":
				r.Verb = l.GetValue()
			case "group":
				r.Group = l.GetValue()
			case "resource":
				r.Resource = l.GetValue()
			case "subresource":
				r.Subresource = l.GetValue()
			}
		}
		out[r] += m.GetCounter().GetValue()
	}
	return out, nil
}

// Sub is r minus before, kind by kind, leaving out kinds that did not change.
func (r Requests) Sub(before Requests) Requests {
	out := Requests{}
	for k, v := range r {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// Sum adds the counts of the kinds match accepts (all of them with a nil match).
func (r Requests) Sum(match func(Request) bool) float64 {
	var n float64
	for k, v := range r {
		if match == nil || match(k) {
			n += v
		}
	}
	return n
}

// auditPolicy logs every request's metadata (no bodies) once it is answered, and a
// long-running one (a watch) also when it starts, so an open watch is seen before it ends.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
`

// AuditEvent is one request from the API server's audit log.
type AuditEvent struct {
	ID          string
	Verb        string // get, list, watch, create, update, patch, delete (lower case)
	User        string // system:serviceaccount:<ns>:<sa>, admin, system:apiserver, …
	Namespace   string
	Resource    string
	Subresource string
	Name        string
	Code        int // the response's status code; 0 for a watch still open
	Received    time.Time
}

// Audit reads the API server's audit log (off with Options.NoAudit): every request since the cluster started, in
// order, each once (a watch as soon as it starts). Unlike Requests it names the user, so a
// test counts exactly what its agents asked, free of the API server's own traffic:
//
//	n := kube.CountAudit(events, func(e kube.AuditEvent) bool { return e.User == user && e.Received.After(t0) })
func (c *Cluster) Audit() ([]AuditEvent, error) {
	f, err := os.Open(filepath.Join(c.Dir, "audit.log"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var (
		out  []AuditEvent
		seen = map[string]int{} // audit ID → index in out
	)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		var e struct {
			AuditID string `json:"auditID"`
			Stage   string `json:"stage"`
			Verb    string `json:"verb"`
			User    struct {
				Username string `json:"username"`
			} `json:"user"`
			ObjectRef *struct {
				Resource    string `json:"resource"`
				Namespace   string `json:"namespace"`
				Name        string `json:"name"`
				Subresource string `json:"subresource"`
			} `json:"objectRef"`
			ResponseStatus *struct {
				Code int `json:"code"`
			} `json:"responseStatus"`
			Received time.Time `json:"requestReceivedTimestamp"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			// The last line may be half written while the API server runs.
			continue
		}
		ev := AuditEvent{ID: e.AuditID, Verb: e.Verb, User: e.User.Username, Received: e.Received}
		if e.ObjectRef != nil {
			ev.Namespace, ev.Resource, ev.Name, ev.Subresource = e.ObjectRef.Namespace, e.ObjectRef.Resource, e.ObjectRef.Name, e.ObjectRef.Subresource
		}
		if e.ResponseStatus != nil && e.Stage == "ResponseComplete" {
			ev.Code = e.ResponseStatus.Code
		}
		if i, ok := seen[e.AuditID]; ok {
			if ev.Code != 0 {
				out[i].Code = ev.Code
			}
			continue
		}
		seen[e.AuditID] = len(out)
		out = append(out, ev)
	}
	return out, sc.Err()
}

// CountAudit counts the events match accepts.
func CountAudit(events []AuditEvent, match func(AuditEvent) bool) int {
	n := 0
	for _, e := range events {
		if match(e) {
			n++
		}
	}
	return n
}
