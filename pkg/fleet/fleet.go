// Package fleet coordinates the agents of one group — the sidecars of a workload's replicas —
// through the Kubernetes API server and the etcd behind it, with no server of chaoscron's own.
//
// Everything is a coordination.k8s.io/v1 Lease in the group's namespace, labelled with the
// group, so one watch tells an agent all of it:
//
//	chaoscron-<group>-<pod>   a member: renewed every fleet.renew, says what it has in place
//	chaoscron-<group>-slots   the faults in place across the group: holder → expiry, taken and
//	                          given back by optimistic updates (resourceVersion), so two agents
//	                          racing for the last slot cannot both win
//	chaoscron-<group>-state   the fleet halt, set by `chaoscron fleet halt|resume`
//
// An agent that cannot confirm the group's state (renew and watch both working) for
// fleet.stale_after stops its chaos: the runner is suspended and its faults reverted.
package fleet

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	coordv1 "k8s.io/api/coordination/v1"

	"github.com/chaoscron/chaoscron/journal"
	"github.com/chaoscron/chaoscron/pkg/config"
	"github.com/chaoscron/chaoscron/pkg/metrics"
)

// Labels and annotations on the fleet's Leases.
const (
	LabelGroup = "chaoscron.io/group"
	LabelKind  = "chaoscron.io/kind" // member, slots, state

	AnnHolders  = "chaoscron.io/holders"  // slots: JSON holder → expiry
	AnnInPlace  = "chaoscron.io/in-place" // member: JSON list of the runs in place
	AnnHalted   = "chaoscron.io/halted"   // state: "true" or "false"
	AnnReason   = "chaoscron.io/reason"
	AnnBy       = "chaoscron.io/by"
	AnnSince    = "chaoscron.io/since"
	AnnInstance = "chaoscron.io/instance"

	KindMember = "member"
	KindSlots  = "slots"
	KindState  = "state"
)

// Pod is who this agent is in the cluster.
type Pod struct {
	Name      string
	Namespace string
	UID       string            // for Events' involvedObject; "" outside a pod: no Events
	Labels    map[string]string // for PodDisruptionBudget selectors
}

// Options wires a Fleet.
type Options struct {
	Config  config.Fleet // validated; Group and Namespace resolved (see Resolve)
	Pod     Pod
	Agent   journal.Agent
	Client  *API
	Metrics *metrics.Set
	Log     *slog.Logger
	// OnState is called with each new State, from the Fleet's own goroutine.
	OnState func(State)
}

// State is what the agent knows of its group.
type State struct {
	Contact bool   // the group's state is confirmed (renew and watch both work)
	Detail  string // why not, when !Contact
	Halted  bool
	Reason  string // the halt's
	By      string
	Since   time.Time
}

// Fleet is one agent's membership of its group. Create it with New and Run it.
type Fleet struct {
	cfg    config.Fleet
	pod    Pod
	agent  journal.Agent
	cs     *API
	m      *metrics.Set
	log    *slog.Logger
	notify func(State)
	ev     *events

	kick chan struct{} // wakes the loop: a release to do

	mu        sync.Mutex
	leases    map[string]*coordv1.Lease // the group's, by name, from the watch
	watching  bool                      // the watch stream is open
	watchErr  string                    // why it is not
	renewed   time.Time                 // last successful member renew
	renewErr  string
	confirmed time.Time // last time renew and watch both held
	state     State
	held      map[string]string    // holder keys this agent holds → fault type
	releases  map[string]time.Time // holder keys to give back → when they expire anyway
	inPlace   map[uint64]Placed    // runs in place, from Tell
}

// Placed is a run in place on a member, as its member Lease lists it.
type Placed struct {
	Run        uint64    `json:"run"`
	Experiment string    `json:"experiment"`
	Fault      string    `json:"fault"`
	Since      time.Time `json:"since"`
	Until      time.Time `json:"until"`
}

// New returns a Fleet; it does nothing until Run.
func New(o Options) (*Fleet, error) {
	if o.Client == nil {
		return nil, errors.New("fleet: no Kubernetes client")
	}
	if o.Config.Group == "" || o.Config.Namespace == "" || o.Pod.Name == "" {
		return nil, fmt.Errorf("fleet: group %q, namespace %q and pod %q must all be known", o.Config.Group, o.Config.Namespace, o.Pod.Name)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New("")
	}
	o.Metrics.Fleet()
	if o.OnState == nil {
		o.OnState = func(State) {}
	}
	f := &Fleet{
		cfg: o.Config, pod: o.Pod, agent: o.Agent, cs: o.Client, m: o.Metrics,
		log: o.Log.With("group", o.Config.Group), notify: o.OnState,
		kick:     make(chan struct{}, 1),
		leases:   map[string]*coordv1.Lease{},
		held:     map[string]string{},
		releases: map[string]time.Time{},
		inPlace:  map[uint64]Placed{},
		state:    State{Detail: "waiting for the fleet's state from the Kubernetes API"},
	}
	f.ev = newEvents(f)
	return f, nil
}

// Names of the group's Leases.
func memberName(group, pod string) string { return name("chaoscron-" + group + "-" + pod) }
func slotsName(group string) string       { return name("chaoscron-" + group + "-slots") }
func stateName(group string) string       { return name("chaoscron-" + group + "-state") }

var notDNS = regexp.MustCompile(`[^a-z0-9.-]+`)

// name makes s a valid object name (a DNS subdomain): lower case, other characters as "-".
func name(s string) string {
	s = notDNS.ReplaceAllString(strings.ToLower(s), "-")
	if len(s) > 253 {
		s = s[:253]
	}
	return strings.Trim(s, "-.")
}

// labelValue is a valid label value pattern; a group must be one.
var labelValue = regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$`)

// Resolve fills in what the config leaves to the environment: the group, the namespace and the
// pod. ns is the namespace of the client's credentials ("" if none).
func Resolve(cfg config.Fleet, ns string) (config.Fleet, Pod, error) {
	pod := Pod{Name: os.Getenv("POD_NAME"), Namespace: os.Getenv("POD_NAMESPACE"), UID: os.Getenv("POD_UID")}
	if pod.Name == "" {
		pod.Name, _ = os.Hostname()
	}
	if cfg.LabelsFile != "" {
		if b, err := os.ReadFile(cfg.LabelsFile); err == nil {
			pod.Labels = parseLabels(string(b))
		}
	}
	if cfg.Namespace == "" {
		cfg.Namespace = pod.Namespace
	}
	if cfg.Namespace == "" {
		cfg.Namespace = ns
	}
	if cfg.Namespace == "" {
		cfg.Namespace = "default"
	}
	if pod.Namespace == "" {
		pod.Namespace = cfg.Namespace
	}
	if cfg.Group == "" {
		cfg.Group = defaultGroup(pod)
	}
	if !labelValue.MatchString(cfg.Group) || cfg.Group == "" {
		return cfg, pod, fmt.Errorf("fleet.group %q: expected a label value (at most 63 letters, digits, '-', '_' or '.')", cfg.Group)
	}
	return cfg, pod, nil
}

// podSuffix is what a ReplicaSet (-<hash>-<5>) or a StatefulSet (-<ordinal>) adds to a name.
var podSuffix = regexp.MustCompile(`(-[a-z0-9]{6,10}-[a-z0-9]{5}|-[0-9]+)$`)

// defaultGroup is the workload's name: the app.kubernetes.io/name or app label, else the pod
// name without the suffix its controller added.
func defaultGroup(p Pod) string {
	for _, k := range []string{"app.kubernetes.io/name", "app"} {
		if v := p.Labels[k]; v != "" {
			return v
		}
	}
	return podSuffix.ReplaceAllString(p.Name, "")
}

// parseLabels reads a downward API labels file: key="value" per line, values quoted as Go does.
func parseLabels(s string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		if u, err := strconv.Unquote(v); err == nil {
			v = u
		}
		out[k] = v
	}
	return out
}
