package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

// Fleet coordinates the agents of one group (the sidecars of a Deployment's replicas) through
// the Kubernetes API: members, a bound on the faults in place across the group, a fleet-wide
// halt, PodDisruptionBudgets and Events. Off by default.
type Fleet struct {
	Enabled bool `koanf:"enabled"`
	// Group names the agents that share the limits; the fleet component sets it from the pod
	// label app.kubernetes.io/name. Default: that label from LabelsFile, else the pod name
	// without a ReplicaSet's or StatefulSet's suffix.
	Group string `koanf:"group"`
	// Namespace holds the fleet's Leases. Default: $POD_NAMESPACE, else the ServiceAccount's,
	// else the kubeconfig context's.
	Namespace string `koanf:"namespace"`
	// Kubeconfig is used outside a pod. Default: in-cluster credentials, else $KUBECONFIG,
	// else ~/.kube/config.
	Kubeconfig string `koanf:"kubeconfig"`
	// Renew is how often the agent renews its member Lease (and the slots it holds).
	Renew time.Duration `koanf:"renew"`
	// StaleAfter is how long the agent may go without confirming the fleet's state before it
	// reverts its faults and fires nothing (the dead-man's switch).
	StaleAfter time.Duration `koanf:"stale_after"`
	// MaxActive bounds the faults in place across the group at once: a number, or a percent
	// of the live members (rounded down, at least 1).
	MaxActive Limit `koanf:"max_active"`
	// RespectPDB skips runs of the Disruptive fault types while a PodDisruptionBudget that
	// selects this pod allows no disruption.
	RespectPDB bool     `koanf:"respect_pdb"`
	Disruptive []string `koanf:"disruptive"`
	// LabelsFile is the pod's labels from a downward API volume (for PDB selectors).
	LabelsFile string `koanf:"labels_file"`
}

// Fleet defaults.
const (
	DefaultFleetRenew      = 5 * time.Second
	DefaultFleetStaleAfter = 30 * time.Second
	DefaultFleetMaxActive  = Limit("1")
	DefaultFleetLabelsFile = "/etc/podinfo/labels"
)

// Limit is a count ("3") or a percent of a whole ("20%").
type Limit string

var limitType = reflect.TypeFor[Limit]()

// Of resolves the limit against a whole of n: a percent rounds down, but never below 1.
func (l Limit) Of(n int) int {
	v, pct, err := l.parse()
	if err != nil {
		return 1
	}
	if !pct {
		return int(v)
	}
	k := int(v * float64(n) / 100)
	return max(k, 1)
}

func (l Limit) parse() (v float64, pct bool, err error) {
	s := strings.TrimSpace(string(l))
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err = strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || v <= 0 || v > 100 {
			return 0, true, fmt.Errorf("expected a percent above 0%% and at most 100%%, got %q", string(l))
		}
		return v, true, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, false, fmt.Errorf("expected a number of faults (at least 1) or a percent of the live members (like 20%%), got %q", string(l))
	}
	return float64(n), false, nil
}

// limitNumber lets a bare YAML number stand for a Limit (max_active: 2).
func limitNumber(_, to reflect.Type, v any) (any, error) {
	if to != limitType {
		return v, nil
	}
	switch x := v.(type) {
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	}
	return v, nil
}

// In-cluster credentials, as client-go's rest.InClusterConfig finds them.
var (
	serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"
	lookupEnv         = os.LookupEnv
)

// InCluster reports whether a ServiceAccount's credentials are at hand.
func InCluster() bool {
	_, host := lookupEnv("KUBERNETES_SERVICE_HOST")
	_, err := os.Stat(filepath.Join(serviceAccountDir, "token"))
	return host && err == nil
}

// FleetKubeconfig is the kubeconfig fleet mode uses when not in a cluster: fleet.kubeconfig,
// else $KUBECONFIG's first file, else ~/.kube/config. "" when there is none.
func (f Fleet) FleetKubeconfig() string {
	if f.Kubeconfig != "" {
		return f.Kubeconfig
	}
	if v, _ := lookupEnv("KUBECONFIG"); v != "" {
		return filepath.SplitList(v)[0]
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".kube", "config")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

func (r *report) validateFleet(c *Config) {
	f := &c.Fleet
	p := path{"fleet"}
	if !f.Enabled {
		return
	}
	r.check(f.Renew > 0, p.key("renew"), "must be above 0, got %s", fmtDuration(f.Renew))
	r.check(f.StaleAfter >= 2*f.Renew, p.key("stale_after"),
		"must be at least twice fleet.renew (%s), so one slow renew does not stop the chaos, got %s", fmtDuration(f.Renew), fmtDuration(f.StaleAfter))
	if _, _, err := f.MaxActive.parse(); err != nil {
		r.check(false, p.key("max_active"), "%s", err)
	}
	for i, t := range f.Disruptive {
		if !r.present(p.key("disruptive")) {
			break // the defaults
		}
		r.check(fault.Known(t), p.key("disruptive").index(i), "unknown fault type %q", t)
	}
	if f.Kubeconfig != "" {
		if _, err := os.Stat(f.Kubeconfig); err != nil {
			r.check(false, p.key("kubeconfig"), "cannot read %s: %s", f.Kubeconfig, pathReason(err))
		}
		return
	}
	if !InCluster() && f.FleetKubeconfig() == "" {
		r.check(false, p.key("enabled"), "fleet mode needs Kubernetes credentials: none in the pod "+
			"(KUBERNETES_SERVICE_HOST and %s/token) and no kubeconfig (fleet.kubeconfig, $KUBECONFIG, ~/.kube/config)", serviceAccountDir)
	}
}

// pathReason is an os error without the path, which the caller names already.
func pathReason(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
