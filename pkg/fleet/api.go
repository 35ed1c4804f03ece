package fleet

import (
	"context"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
)

// API is the part of the Kubernetes API a fleet uses: Leases, Events and PodDisruptionBudgets,
// through client-go's REST client and a scheme of only those three API groups. The generated
// clientset (k8s.io/client-go/kubernetes) registers every API group and, through its apply
// configurations, the whole OpenAPI schema: it took the binary from 13 to 33 MB for the same
// requests, which this makes exactly as its typed clients do.
type API struct {
	coord, core, policy rest.Interface
}

var (
	scheme = runtime.NewScheme()
	codecs = serializer.NewCodecFactory(scheme)
	params = runtime.NewParameterCodec(scheme)
)

func init() {
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
	for _, add := range []func(*runtime.Scheme) error{coordv1.AddToScheme, corev1.AddToScheme, policyv1.AddToScheme} {
		if err := add(scheme); err != nil {
			panic(err) // a registration conflict among three API groups: a bug
		}
	}
}

// NewAPI returns an API on the server and credentials of rc.
func NewAPI(rc *rest.Config) (*API, error) {
	mk := func(gv schema.GroupVersion, path string) (rest.Interface, error) {
		c := rest.CopyConfig(rc)
		c.GroupVersion, c.APIPath = &gv, path
		c.NegotiatedSerializer = codecs.WithoutConversion()
		return rest.RESTClientFor(c)
	}
	var a API
	var err error
	if a.coord, err = mk(coordv1.SchemeGroupVersion, "/apis"); err != nil {
		return nil, err
	}
	if a.core, err = mk(corev1.SchemeGroupVersion, "/api"); err != nil {
		return nil, err
	}
	if a.policy, err = mk(policyv1.SchemeGroupVersion, "/apis"); err != nil {
		return nil, err
	}
	return &a, nil
}

// Leases returns the Leases of namespace ns.
func (a *API) Leases(ns string) Leases { return Leases{a.coord, ns} }

// Leases are one namespace's coordination.k8s.io/v1 Leases.
type Leases struct {
	c  rest.Interface
	ns string
}

func (l Leases) Get(ctx context.Context, name string, o metav1.GetOptions) (*coordv1.Lease, error) {
	out := &coordv1.Lease{}
	err := l.c.Get().Namespace(l.ns).Resource("leases").Name(name).VersionedParams(&o, params).Do(ctx).Into(out)
	return out, err
}

func (l Leases) List(ctx context.Context, o metav1.ListOptions) (*coordv1.LeaseList, error) {
	out := &coordv1.LeaseList{}
	err := l.c.Get().Namespace(l.ns).Resource("leases").VersionedParams(&o, params).Do(ctx).Into(out)
	return out, err
}

// Watch watches the Leases; the request lasts o.TimeoutSeconds (the server's default if nil).
func (l Leases) Watch(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
	var timeout time.Duration
	if o.TimeoutSeconds != nil {
		timeout = time.Duration(*o.TimeoutSeconds) * time.Second
	}
	o.Watch = true
	return l.c.Get().Namespace(l.ns).Resource("leases").VersionedParams(&o, params).Timeout(timeout).Watch(ctx)
}

func (l Leases) Create(ctx context.Context, x *coordv1.Lease, o metav1.CreateOptions) (*coordv1.Lease, error) {
	out := &coordv1.Lease{}
	err := l.c.Post().Namespace(l.ns).Resource("leases").VersionedParams(&o, params).Body(x).Do(ctx).Into(out)
	return out, err
}

func (l Leases) Update(ctx context.Context, x *coordv1.Lease, o metav1.UpdateOptions) (*coordv1.Lease, error) {
	out := &coordv1.Lease{}
	err := l.c.Put().Namespace(l.ns).Resource("leases").Name(x.Name).VersionedParams(&o, params).Body(x).Do(ctx).Into(out)
	return out, err
}

func (l Leases) Delete(ctx context.Context, name string, o metav1.DeleteOptions) error {
	return l.c.Delete().Namespace(l.ns).Resource("leases").Name(name).Body(&o).Do(ctx).Error()
}

// PodDisruptionBudgets lists namespace ns's policy/v1 PodDisruptionBudgets.
func (a *API) PodDisruptionBudgets(ctx context.Context, ns string) (*policyv1.PodDisruptionBudgetList, error) {
	out := &policyv1.PodDisruptionBudgetList{}
	err := a.policy.Get().Namespace(ns).Resource("poddisruptionbudgets").Do(ctx).Into(out)
	return out, err
}

// eventTimeout bounds one Event write: client-go's recorder calls its sink without a context.
const eventTimeout = 10 * time.Second

// eventSink is client-go's record.EventSink over the API: create, update, and the strategic
// merge patch that aggregates a repeat into a count.
type eventSink struct{ c rest.Interface }

func (e eventSink) Create(ev *corev1.Event) (*corev1.Event, error) {
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	out := &corev1.Event{}
	err := e.c.Post().Namespace(ev.Namespace).Resource("events").Body(ev).Do(ctx).Into(out)
	return out, err
}

func (e eventSink) Update(ev *corev1.Event) (*corev1.Event, error) {
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	out := &corev1.Event{}
	err := e.c.Put().Namespace(ev.Namespace).Resource("events").Name(ev.Name).Body(ev).Do(ctx).Into(out)
	return out, err
}

func (e eventSink) Patch(ev *corev1.Event, data []byte) (*corev1.Event, error) {
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	out := &corev1.Event{}
	err := e.c.Patch(types.StrategicMergePatchType).Namespace(ev.Namespace).Resource("events").Name(ev.Name).Body(data).Do(ctx).Into(out)
	return out, err
}
