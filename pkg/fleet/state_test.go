package fleet_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/chaoscron/chaoscron/journal"
	"github.com/chaoscron/chaoscron/pkg/fleet"
)

// TestHaltReachesMember: fleet halt is seen through the watch, refuses takes with reason
// halted, and resume lifts it.
func TestHaltReachesMember(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	f := e.join(t, e.config("halt", "2"), fleet.Pod{Name: "web-1"})
	if err := fleet.SetHalt(ctx, e.agent, e.ns, "halt", true, "incident 42", "oncall"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "halt seen", func() bool { return f.State().Halted })
	st := f.State()
	if st.Reason != "incident 42" || st.By != "oncall" {
		t.Errorf("state = %+v", st)
	}
	_, err := f.Take(ctx, "x", "cpu")
	var ref *fleet.Refusal
	if !errors.As(err, &ref) || ref.Reason() != "halted" || !strings.Contains(err.Error(), "fleet halt halted by oncall: incident 42") {
		t.Fatalf("take while halted: %v", err)
	}
	if err := fleet.SetHalt(ctx, e.agent, e.ns, "halt", false, "", "oncall"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "resume seen", func() bool { return !f.State().Halted })
	if _, err := f.Take(ctx, "y", "cpu"); err != nil {
		t.Fatalf("take after resume: %v", err)
	}
}

// TestRevokedAccess: with the agent's RoleBinding deleted (access revoked), the member loses
// contact after stale_after and says why; OnState is told; with the binding back it regains
// contact by itself.
func TestRevokedAccess(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var mu sync.Mutex
	var states []fleet.State
	fc := e.config("revoke", "1")
	f, err := fleet.New(fleet.Options{Config: fc, Pod: fleet.Pod{Name: "web-1", Namespace: e.ns}, Agent: journal.Agent{Instance: "i1"}, Client: e.client(t),
		OnState: func(s fleet.State) { mu.Lock(); states = append(states, s); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); f.Run(rctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, 10*time.Second, "contact", func() bool { return f.State().Contact })

	rbs, err := e.admin.RbacV1().RoleBindings(e.ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(rbs.Items) != 1 {
		t.Fatalf("role bindings: %v %v", rbs, err)
	}
	rb := rbs.Items[0]
	if err := e.admin.RbacV1().RoleBindings(e.ns).Delete(ctx, rb.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	waitFor(t, fc.StaleAfter+fc.Renew+5*time.Second, "contact lost", func() bool { return !f.State().Contact })
	took := time.Since(revoked)
	st := f.State()
	if !strings.Contains(st.Detail, "forbidden") {
		t.Errorf("detail %q does not say forbidden", st.Detail)
	}
	t.Logf("contact lost %s after the binding was deleted (stale_after %s, renew %s): %s", took.Round(time.Millisecond), fc.StaleAfter, fc.Renew, st.Detail)
	if _, err := f.Take(ctx, "x", "cpu"); err == nil || !strings.Contains(err.Error(), "fleet state not confirmed") {
		t.Errorf("take without contact: %v", err)
	}
	rb.ResourceVersion = ""
	if _, err := e.admin.RbacV1().RoleBindings(e.ns).Create(ctx, &rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "contact back", func() bool { return f.State().Contact })
	mu.Lock()
	defer mu.Unlock()
	var lost, back bool
	for _, s := range states {
		if !s.Contact && strings.Contains(s.Detail, "not confirmed for") {
			lost = true
		}
		if lost && s.Contact {
			back = true
		}
	}
	if !lost || !back {
		t.Errorf("OnState was not told of the loss and the return: %+v", states)
	}
}

// TestLeave: a clean exit deletes the member Lease this instance holds, and never one a newer
// agent of the same pod holds now. (Its reading the Lease fresh, for a renew cut short by the
// exit, is what TestFleetAgents's clean stops caught: a race this test cannot pin down.)
func TestLeave(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	fc := e.config("leave", "1")
	fc.Renew = 5 * time.Second // no renew of its own between the steps below
	fc.StaleAfter = 30 * time.Second
	name := "chaoscron-leave-web-1"
	start := func() (stop func()) {
		f, err := fleet.New(fleet.Options{Config: fc, Pod: fleet.Pod{Name: "web-1", Namespace: e.ns}, Agent: journal.Agent{Instance: "a"}, Client: e.client(t)})
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); f.Run(rctx) }()
		waitFor(t, 10*time.Second, "contact", func() bool { return f.State().Contact })
		return func() { cancel(); <-done }
	}
	leases := e.admin.CoordinationV1().Leases(e.ns)

	stop := start()
	stop()
	if _, err := leases.Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("member lease after a clean exit: %v, want not found", err)
	}

	// Taken over by a newer agent of the same pod: left to it.
	stop = start()
	l, err := leases.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	newer := "web-1/b"
	l.Spec.HolderIdentity = &newer
	if _, err := leases.Update(ctx, l, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	stop()
	l, err = leases.Get(ctx, name, metav1.GetOptions{})
	if err != nil || *l.Spec.HolderIdentity != newer {
		t.Fatalf("the newer agent's member lease after the old one left: %v, %v", l, err)
	}
}
