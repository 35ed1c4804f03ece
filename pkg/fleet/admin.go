package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// SetHalt turns the group's halt on or off: every agent of the group watches it, reverts its
// faults and fires nothing while it is on, also across restarts. by says who.
func SetHalt(ctx context.Context, cs *API, ns, group string, on bool, reason, by string) error {
	leases := cs.Leases(ns)
	name := stateName(group)
	ann := map[string]string{AnnHalted: fmt.Sprint(on), AnnReason: reason, AnnBy: by, AnnSince: time.Now().UTC().Format(time.RFC3339)}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		l, err := leases.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			l = &coordv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
				Labels: map[string]string{LabelGroup: group, LabelKind: KindState}}}
			l.Annotations = ann
			l.Spec.HolderIdentity = &by
			_, err = leases.Create(ctx, l, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				return apierrors.NewConflict(coordv1.Resource("leases"), name, err)
			}
			return err
		}
		if err != nil {
			return err
		}
		if l.Annotations == nil {
			l.Annotations = map[string]string{}
		}
		maps.Copy(l.Annotations, ann)
		l.Spec.HolderIdentity = &by
		_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
		return err
	})
}

// Report is the group as `chaoscron fleet status` shows it.
type Report struct {
	Group     string    `json:"group"`
	Namespace string    `json:"namespace"`
	Halted    bool      `json:"halted"`
	Reason    string    `json:"reason,omitempty"`
	By        string    `json:"by,omitempty"`
	Since     time.Time `json:"since,omitzero"`
	Members   []Member  `json:"members"`
	Slots     []Holder  `json:"slots"`
	Checked   time.Time `json:"checked"`
}

// Member is one agent of the group.
type Member struct {
	Pod      string    `json:"pod"`
	Instance string    `json:"instance"`
	Renewed  time.Time `json:"renewed"`
	Live     bool      `json:"live"`
	InPlace  []Placed  `json:"in_place"`
}

// Holder is one slot in use.
type Holder struct {
	Holder  string    `json:"holder"`
	Expires time.Time `json:"expires"`
}

// Status reads the group's Leases.
func Status(ctx context.Context, cs *API, ns, group string) (Report, error) {
	rep := Report{Group: group, Namespace: ns, Members: []Member{}, Slots: []Holder{}, Checked: time.Now().UTC()}
	list, err := cs.Leases(ns).List(ctx, metav1.ListOptions{LabelSelector: LabelGroup + "=" + group})
	if err != nil {
		return rep, fmt.Errorf("fleet status: %w", err)
	}
	now := time.Now()
	for _, l := range list.Items {
		switch l.Labels[LabelKind] {
		case KindMember:
			m := Member{Instance: l.Annotations[AnnInstance], Live: alive(&l, now), InPlace: []Placed{}}
			if l.Spec.HolderIdentity != nil {
				m.Pod, _, _ = strings.Cut(*l.Spec.HolderIdentity, "/")
			}
			if l.Spec.RenewTime != nil {
				m.Renewed = l.Spec.RenewTime.UTC()
			}
			_ = json.Unmarshal([]byte(l.Annotations[AnnInPlace]), &m.InPlace)
			rep.Members = append(rep.Members, m)
		case KindSlots:
			hs, err := holders(&l)
			if err != nil {
				return rep, err
			}
			for _, h := range slices.Sorted(maps.Keys(live(hs, now))) {
				rep.Slots = append(rep.Slots, Holder{Holder: h, Expires: hs[h]})
			}
		case KindState:
			rep.Halted = l.Annotations[AnnHalted] == "true"
			rep.Reason, rep.By = l.Annotations[AnnReason], l.Annotations[AnnBy]
			rep.Since, _ = time.Parse(time.RFC3339, l.Annotations[AnnSince])
		}
	}
	slices.SortFunc(rep.Members, func(a, b Member) int { return strings.Compare(a.Pod, b.Pod) })
	return rep, nil
}
