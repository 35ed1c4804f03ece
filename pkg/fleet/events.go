package fleet

import (
	"context"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"

	"github.com/chaoscron/chaoscron/journal"
)

// Event reasons on the agent's pod.
const (
	EventInjected  = "ChaosInjected"
	EventReverted  = "ChaosReverted"
	EventAborted   = "ChaosAborted"
	EventFailed    = "ChaosFailed"
	EventRecovered = "ChaosRecovered"
	EventHalted    = "ChaosHalted"
	EventResumed   = "ChaosResumed"
)

// events reports runs as Kubernetes Events on the agent's pod, through client-go's
// broadcaster: asynchronous, rate-limited, and aggregated as every component's Events are
// (repeats count up on one Event instead of piling up).
type events struct {
	f   *Fleet
	b   record.EventBroadcaster
	rec record.EventRecorder
	ref *corev1.ObjectReference
}

func newEvents(f *Fleet) *events {
	if f.pod.UID == "" {
		return &events{f: f} // not in a pod (no POD_UID): nothing to hang Events on
	}
	return &events{f: f, ref: &corev1.ObjectReference{
		Kind: "Pod", APIVersion: "v1", Namespace: f.pod.Namespace, Name: f.pod.Name, UID: types.UID(f.pod.UID),
	}}
}

func (e *events) start(ctx context.Context) {
	if e.ref == nil {
		e.f.log.Info("no POD_UID: runs are not reported as Kubernetes Events")
		return
	}
	e.b = record.NewBroadcaster(record.WithContext(ctx))
	e.b.StartRecordingToSink(eventSink{e.f.cs.core})
	host, _ := os.Hostname()
	e.rec = e.b.NewRecorder(scheme, corev1.EventSource{Component: "chaoscron", Host: host})
}

// stop flushes what is queued, briefly, and stops the broadcaster.
func (e *events) stop() {
	if e.b != nil {
		e.b.Shutdown()
	}
}

func (e *events) emit(kind, reason, format string, args ...any) {
	if e.rec != nil {
		e.rec.Eventf(e.ref, kind, reason, format, args...)
	}
}

// run reports a run's new state.
func (e *events) run(r *journal.Record) {
	what := fmt.Sprintf("%s run %d (%s)", r.Experiment, r.ID, r.Fault)
	switch {
	case r.Cleanup == journal.CleanupRecovered:
		e.emit(corev1.EventTypeNormal, EventRecovered, "%s: left behind by agent %s, reverted", what, r.Agent.Instance)
	case r.Cleanup == journal.CleanupFailed:
		e.emit(corev1.EventTypeWarning, EventFailed, "%s: revert failed, the fault may still be in place: %s", what, r.Error)
	case r.Status == journal.Active:
		e.emit(corev1.EventTypeNormal, EventInjected, "%s: in place until %s", what, r.PlannedEnd.Format(time.RFC3339))
	case r.Status == journal.Failed:
		e.emit(corev1.EventTypeWarning, EventFailed, "%s: injection failed: %s", what, r.Error)
	case r.Status == journal.Aborted:
		e.emit(corev1.EventTypeNormal, EventAborted, "%s: ended early (%s), reverted", what, r.Reason)
	case r.Status == journal.Succeeded && r.Cleanup == journal.CleanupDone:
		e.emit(corev1.EventTypeNormal, EventReverted, "%s: held %s, reverted", what, r.EndedAt.Sub(r.AppliedAt).Round(time.Millisecond))
	}
}

func (e *events) halt(st State) {
	e.emit(corev1.EventTypeWarning, EventHalted, "fleet %s halted by %s: %s; faults reverted", e.f.cfg.Group, st.By, st.Reason)
}

func (e *events) resume(st State) {
	e.emit(corev1.EventTypeNormal, EventResumed, "fleet %s resumed by %s", e.f.cfg.Group, st.By)
}

// Tell reports a run's new state as an Event, and keeps the member Lease's list of what is in
// place up to date (written at the next renew).
func (f *Fleet) Tell(r *journal.Record) {
	f.mu.Lock()
	if r.Status == journal.Active || r.Cleanup == journal.CleanupFailed {
		f.inPlace[r.ID] = Placed{Run: r.ID, Experiment: r.Experiment, Fault: r.Fault, Since: r.AppliedAt, Until: r.PlannedEnd}
	} else {
		delete(f.inPlace, r.ID)
	}
	f.mu.Unlock()
	f.ev.run(r)
}

// AgentHalted reports the agent's own halt switch (chaoscron halt, not the fleet's) as an Event.
func (f *Fleet) AgentHalted(on bool, reason string) {
	if on {
		f.ev.emit(corev1.EventTypeWarning, EventHalted, "agent halted: %s; faults reverted", reason)
	} else {
		f.ev.emit(corev1.EventTypeNormal, EventResumed, "agent resumed")
	}
}
