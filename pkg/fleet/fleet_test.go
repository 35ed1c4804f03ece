package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/chaoscron/chaoscron/internal/kube"
	"github.com/chaoscron/chaoscron/journal"
	"github.com/chaoscron/chaoscron/pkg/config"
	"github.com/chaoscron/chaoscron/pkg/fleet"
)

func TestMain(m *testing.M) { os.Exit(kube.RunShared(m)) }

// env is a namespace of the shared control plane with the fleet component's RBAC applied,
// and a client holding a token of its ServiceAccount: the tests act as an agent would,
// never as an admin.
type env struct {
	c     *kube.Cluster
	ns    string
	rc    *rest.Config
	agent *fleet.API // for the tests' own reads and writes
	admin kubernetes.Interface
}

func newEnv(t *testing.T) *env { return newEnvTB(t) }

func newEnvTB(t testing.TB) *env {
	t.Helper()
	c := kube.Shared(t)
	ns := c.Namespace(t)
	ctx := context.Background()
	rbac, err := c.ApplyFleetRBAC(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := c.ServiceAccountConfig(ctx, ns, rbac.ServiceAccount.Name)
	if err != nil {
		t.Fatal(err)
	}
	rc.QPS, rc.Burst = 50, 100
	cs, err := fleet.NewAPI(rc)
	if err != nil {
		t.Fatal(err)
	}
	return &env{c: c, ns: ns, rc: rc, agent: cs, admin: c.Client()}
}

// client is a client of its own for one member, with the agent's client-side rate limit
// (fleet.Client): members sharing one limiter would wait for each other's requests, as no two
// agents do.
func (e *env) client(t testing.TB) *fleet.API {
	t.Helper()
	rc := rest.CopyConfig(e.rc)
	rc.QPS, rc.Burst = fleet.QPS, fleet.Burst
	cs, err := fleet.NewAPI(rc)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func (e *env) config(group, maxActive string) config.Fleet {
	return config.Fleet{Enabled: true, Group: group, Namespace: e.ns, Renew: 500 * time.Millisecond,
		StaleAfter: 2 * time.Second, MaxActive: config.Limit(maxActive), RespectPDB: true,
		Disruptive: []string{"process"}}
}

// join starts a member and waits until it has confirmed the group's state.
func (e *env) join(t *testing.T, fc config.Fleet, pod fleet.Pod) *fleet.Fleet {
	t.Helper()
	if pod.Namespace == "" {
		pod.Namespace = e.ns
	}
	f, err := fleet.New(fleet.Options{Config: fc, Pod: pod, Agent: journal.Agent{Instance: "i-" + pod.Name}, Client: e.client(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, 10*time.Second, "contact", func() bool { return f.State().Contact })
	return f
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("no %s within %s", what, d)
}

// TestSlotRace: agents racing for the slots at the same instant: exactly max_active win,
// every round, and the losers are skips with reason fleet.
func TestSlotRace(t *testing.T) {
	e := newEnv(t)
	for _, max := range []int{1, 3} {
		group := fmt.Sprintf("race%d", max)
		var fs []*fleet.Fleet
		for i := range 8 {
			fs = append(fs, e.join(t, e.config(group, fmt.Sprint(max)), fleet.Pod{Name: fmt.Sprintf("p%d", i)}))
		}
		for round := range 10 {
			var (
				wg    sync.WaitGroup
				mu    sync.Mutex
				won   = map[*fleet.Fleet]*journal.Slot{}
				other []error
				start = make(chan struct{})
			)
			for i, f := range fs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					s, err := f.Take(context.Background(), fmt.Sprintf("r%d-%d", round, i), "cpu")
					mu.Lock()
					defer mu.Unlock()
					var ref *fleet.Refusal
					switch {
					case err == nil:
						won[f] = s
					case errors.As(err, &ref) && ref.Reason() == fleet.ReasonFleet && strings.Contains(err.Error(), "in use"):
					default:
						other = append(other, err)
					}
				}()
			}
			close(start)
			wg.Wait()
			if len(won) != max || len(other) > 0 {
				t.Fatalf("max_active %d, round %d: %d won (%v), other errors %v", max, round, len(won), won, other)
			}
			rep, err := fleet.Status(context.Background(), e.agent, e.ns, group)
			if err != nil || len(rep.Slots) != max {
				t.Fatalf("slots lease holds %v (%v), want %d", rep.Slots, err, max)
			}
			for f, s := range won {
				f.Release(s) // by its holder, as the runner does
			}
			waitFor(t, 5*time.Second, "slots given back", func() bool {
				rep, err := fleet.Status(context.Background(), e.agent, e.ns, group)
				return err == nil && len(rep.Slots) == 0
			})
		}
	}
}

// TestPercentOfMembers: "50%" of four live members is two slots.
func TestPercentOfMembers(t *testing.T) {
	e := newEnv(t)
	var fs []*fleet.Fleet
	for i := range 4 {
		fs = append(fs, e.join(t, e.config("pct", "50%"), fleet.Pod{Name: fmt.Sprintf("m%d", i)}))
	}
	waitFor(t, 5*time.Second, "four members seen", func() bool {
		rep, _ := fleet.Status(context.Background(), e.agent, e.ns, "pct")
		return len(rep.Members) == 4
	})
	time.Sleep(time.Second) // each member's watch has all four
	won := 0
	for i, f := range fs {
		if _, err := f.Take(context.Background(), fmt.Sprint(i), "cpu"); err == nil {
			won++
		}
	}
	if won != 2 {
		t.Fatalf("%d slots granted of 50%% of 4 members, want 2", won)
	}
}

// TestDisruptionBudget: a PDB that selects the pod and allows nothing refuses a disruptive
// fault with reason disruption-budget, and nothing else; one that allows a disruption, or
// selects other pods, refuses nothing.
func TestDisruptionBudget(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	f := e.join(t, e.config("pdb", "5"), fleet.Pod{Name: "web-1", Labels: map[string]string{"app": "web", "tier": "front"}})
	mk := func(name string, sel map[string]string, allowed int32) {
		p := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: ptrInt(1), Selector: &metav1.LabelSelector{MatchLabels: sel}}}
		got, err := e.admin.PolicyV1().PodDisruptionBudgets(e.ns).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// No controller manager here: the status a real one would compute is set by hand.
		got.Status = policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: allowed, CurrentHealthy: 1, DesiredHealthy: 1, ExpectedPods: 1}
		if _, err := e.admin.PolicyV1().PodDisruptionBudgets(e.ns).UpdateStatus(ctx, got, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mk("other", map[string]string{"app": "db"}, 0)
	if _, err := f.Take(ctx, "a", "process"); err != nil {
		t.Fatalf("a PDB of other pods refused: %v", err)
	}
	mk("web", map[string]string{"app": "web"}, 0)
	_, err := f.Take(ctx, "b", "process")
	var ref *fleet.Refusal
	if !errors.As(err, &ref) || ref.Reason() != fleet.ReasonDisruption || !strings.Contains(err.Error(), "PodDisruptionBudget web allows no disruption") {
		t.Fatalf("err = %v", err)
	}
	if _, err := f.Take(ctx, "c", "cpu"); err != nil {
		t.Fatalf("a fault not in fleet.disruptive was refused: %v", err)
	}
	p, _ := e.admin.PolicyV1().PodDisruptionBudgets(e.ns).Get(ctx, "web", metav1.GetOptions{})
	p.Status.DisruptionsAllowed = 1
	if _, err := e.admin.PolicyV1().PodDisruptionBudgets(e.ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Take(ctx, "d", "process"); err != nil {
		t.Fatalf("a PDB that allows one disruption refused: %v", err)
	}
}

func ptrInt(i int) *intstr.IntOrString { v := intstr.FromInt32(int32(i)); return &v }

// TestEvents: runs and halts become Events on the pod, which kubectl describe shows, and a
// repeat is aggregated into a count rather than a new Event.
func TestEvents(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	// No controller manager: the namespace's default ServiceAccount, which pod admission
	// asks for, is made by hand.
	if _, err := e.admin.CoreV1().ServiceAccounts(e.ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod, err := e.admin.CoreV1().Pods(e.ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.invalid/app"}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f := e.join(t, e.config("ev", "1"), fleet.Pod{Name: pod.Name, UID: string(pod.UID)})
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rec := &journal.Record{ID: 7, Experiment: "burn", Fault: "cpu", Status: journal.Active, Cleanup: journal.CleanupPending, AppliedAt: t0, PlannedEnd: t0.Add(time.Minute)}
	f.Tell(rec)
	done := *rec
	done.Status, done.Cleanup, done.EndedAt = journal.Succeeded, journal.CleanupDone, t0.Add(time.Minute)
	for range 3 {
		f.Tell(&done)
	}
	if err := fleet.SetHalt(ctx, e.agent, e.ns, "ev", true, "game day over", "tester"); err != nil {
		t.Fatal(err)
	}
	f.AgentHalted(true, "by hand") // chaoscron halt, the agent's own switch
	want := map[string]int32{fleet.EventInjected: 1, fleet.EventReverted: 3, fleet.EventHalted: 2}
	waitFor(t, 10*time.Second, "events", func() bool {
		list, err := e.admin.CoreV1().Events(e.ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.uid=" + string(pod.UID)})
		if err != nil {
			return false
		}
		got := map[string]int32{}
		for _, ev := range list.Items {
			got[ev.Reason] += max(ev.Count, 1)
		}
		for r, n := range want {
			if got[r] != n {
				return false
			}
		}
		return len(list.Items) == 4 // the three reverts are one Event, counted 3; two halts
	})
	kubectl, err := kube.Kubectl(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := e.c.AdminKubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	out, err := runCmd(kubectl, "--kubeconfig", kc, "-n", e.ns, "describe", "pod", pod.Name)
	if err != nil {
		t.Fatalf("kubectl describe: %v\n%s", err, out)
	}
	for _, s := range []string{"ChaosInjected", "burn run 7 (cpu): in place until 2026-01-01T00:01:00Z", "ChaosReverted", "ChaosHalted", "game day over", "agent halted: by hand"} {
		if !strings.Contains(out, s) {
			t.Errorf("kubectl describe pod lacks %q:\n%s", s, out)
		}
	}
}
