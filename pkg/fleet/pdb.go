package fleet

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// budget refuses a disruptive run while a PodDisruptionBudget that selects this pod allows no
// disruption, as an eviction would be refused. One list per disruptive run: PDBs change
// rarely, and a watch of them would double an idle agent's load for a check made seldom.
func (f *Fleet) budget(ctx context.Context) error {
	pdbs, err := f.cs.PodDisruptionBudgets(ctx, f.cfg.Namespace)
	f.count("pdb", err)
	if err != nil {
		// Unknown means no: the budget is there to protect the service.
		return &Refusal{ReasonDisruption, "cannot read PodDisruptionBudgets: " + err.Error()}
	}
	if f.pod.Labels == nil {
		return &Refusal{ReasonDisruption, fmt.Sprintf("the pod's labels are unknown (fleet.labels_file %s): cannot tell which PodDisruptionBudgets select it", f.cfg.LabelsFile)}
	}
	set := labels.Set(f.pod.Labels)
	for _, p := range pdbs.Items {
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil || p.Spec.Selector == nil || !sel.Matches(set) {
			continue
		}
		if p.Status.DisruptionsAllowed < 1 {
			return &Refusal{ReasonDisruption, fmt.Sprintf("PodDisruptionBudget %s allows no disruption now (%d healthy, %d desired)",
				p.Name, p.Status.CurrentHealthy, p.Status.DesiredHealthy)}
		}
	}
	return nil
}
