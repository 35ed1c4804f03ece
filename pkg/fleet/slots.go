package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/chaoscron/chaoscron/journal"
)

// Refusal is a fire the fleet did not allow. Reason is the skip reason.
type Refusal struct {
	reason, detail string
}

func (r *Refusal) Error() string  { return r.detail }
func (r *Refusal) Reason() string { return r.reason }

// Skip reasons.
const (
	ReasonFleet      = "fleet"
	ReasonDisruption = "disruption-budget"
)

// takeTries bounds the optimistic retries of one take: each conflict means another agent
// wrote the slots in between (a take, a release, a renewal), and each retry reads them fresh
// after a short random pause, so that a crowd of racers spreads out instead of colliding
// again in step.
const takeTries = 24

// pause is the wait before retry i: random, up to 4 ms × 2^i, at most 250 ms.
func pause(ctx context.Context, i int) {
	d := min(4*time.Millisecond<<min(i, 6), 250*time.Millisecond)
	sleep(ctx, time.Duration(rand.Int64N(int64(d))))
}

// hold is how long a slot entry lives without a renewal. An agent that loses contact reverts
// its faults within stale_after (plus a renew for the check), so an entry must outlive that
// by a margin before anybody else may count its slot as free.
func (f *Fleet) hold() time.Duration { return f.cfg.StaleAfter + 3*f.cfg.Renew }

// Take reserves a slot for a run (key names it) of fault type ftype: it checks the group's
// state and, for a disruptive fault, the PodDisruptionBudgets, then adds the run to the slots
// Lease if fewer than fleet.max_active are held. A *Refusal is a skip.
func (f *Fleet) Take(ctx context.Context, key, ftype string) (*journal.Slot, error) {
	start := time.Now()
	defer func() { f.m.FleetTakeDelay.Observe(time.Since(start).Seconds()) }()
	st := f.State()
	switch {
	case !st.Contact:
		return nil, &Refusal{ReasonFleet, "fleet state not confirmed: " + st.Detail}
	case st.Halted:
		return nil, &Refusal{"halted", fmt.Sprintf("fleet %s halted by %s: %s", f.cfg.Group, st.By, st.Reason)}
	}
	if f.cfg.RespectPDB && slices.Contains(f.cfg.Disruptive, ftype) {
		if err := f.budget(ctx); err != nil {
			return nil, err
		}
	}
	holder := f.pod.Name + "/" + key
	slot := &journal.Slot{Namespace: f.cfg.Namespace, Lease: slotsName(f.cfg.Group), Holder: holder}
	leases := f.cs.Leases(f.cfg.Namespace)
	f.mu.Lock()
	cur := f.leases[slot.Lease]
	f.mu.Unlock()
	fresh := false // cur was read from the API server just now, not from the watch's cache
	for try := range takeTries {
		now := time.Now()
		limit := f.limit(now)
		var l *coordv1.Lease
		if cur == nil {
			l = &coordv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: slot.Lease, Namespace: f.cfg.Namespace,
				Labels: map[string]string{LabelGroup: f.cfg.Group, LabelKind: KindSlots}}}
		} else {
			l = cur.DeepCopy()
		}
		hs, err := holders(l)
		if err != nil {
			return nil, &Refusal{ReasonFleet, err.Error()}
		}
		if hs = live(hs, now); len(hs) >= limit && !fresh {
			// The cache may lag behind a release: only a fresh read may refuse.
			if cur, err = leases.Get(ctx, slot.Lease, metav1.GetOptions{}); err != nil && !apierrors.IsNotFound(err) {
				f.count("get", err)
				return nil, &Refusal{ReasonFleet, "take a fleet slot: " + err.Error()}
			}
			f.count("get", nil)
			if apierrors.IsNotFound(err) {
				cur = nil
			}
			fresh = true
			continue
		}
		if len(hs) >= limit {
			return nil, &Refusal{ReasonFleet, fmt.Sprintf("no fleet slot: %d of %d in use (fleet.max_active %s): %s",
				len(hs), limit, f.cfg.MaxActive, strings.Join(slices.Sorted(maps.Keys(hs)), ", "))}
		}
		hs[holder] = now.Add(f.hold()).UTC()
		setHolders(l, hs)
		// Added before the write: if the answer is lost, the entry may exist after all,
		// and must then be renewed or given back like any other.
		f.mu.Lock()
		f.held[holder] = ftype
		f.mu.Unlock()
		var got *coordv1.Lease
		if cur == nil {
			got, err = leases.Create(ctx, l, metav1.CreateOptions{})
		} else {
			got, err = leases.Update(ctx, l, metav1.UpdateOptions{})
		}
		f.count("take", err)
		if err == nil {
			f.store(got)
			return slot, nil
		}
		f.mu.Lock()
		delete(f.held, holder)
		f.mu.Unlock()
		if !apierrors.IsConflict(err) && !apierrors.IsAlreadyExists(err) {
			// The write may have landed: give it back, in the background.
			f.Release(slot)
			return nil, &Refusal{ReasonFleet, "take a fleet slot: " + err.Error()}
		}
		pause(ctx, try)
		cur, err = leases.Get(ctx, slot.Lease, metav1.GetOptions{})
		f.count("get", err)
		fresh = true
		if apierrors.IsNotFound(err) {
			cur = nil
		} else if err != nil {
			return nil, &Refusal{ReasonFleet, "take a fleet slot: " + err.Error()}
		}
	}
	return nil, &Refusal{ReasonFleet, fmt.Sprintf("no fleet slot: %d conflicting writes in a row", takeTries)}
}

// Release gives a slot back: at once if the API answers, else from the renew loop until it
// does or the entry has expired anyway. It never blocks.
func (f *Fleet) Release(s *journal.Slot) {
	if s == nil {
		return
	}
	f.mu.Lock()
	delete(f.held, s.Holder)
	f.releases[s.Holder] = time.Now().Add(f.hold())
	f.mu.Unlock()
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// keepSlots renews the entries this agent holds.
func (f *Fleet) keepSlots(ctx context.Context) {
	f.mu.Lock()
	n := len(f.held)
	f.mu.Unlock()
	if n == 0 {
		return
	}
	err := f.editSlots(ctx, "renew-slots", func(hs map[string]time.Time, now time.Time) bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		// Only entries already there: a take still in flight must not be written by its
		// renewal before the take itself has won.
		// Written only when an entry has used half its life: each write of the one slots
		// Lease can make a racing take retry, so renewals stay rare.
		due := false
		for h := range f.held {
			if exp, ok := hs[h]; ok {
				due = due || exp.Sub(now) < f.hold()/2
			}
		}
		if !due {
			return false
		}
		for h := range f.held {
			if _, ok := hs[h]; ok {
				hs[h] = now.Add(f.hold()).UTC()
			}
		}
		return true
	})
	if err != nil {
		f.log.Warn("fleet slots not renewed", "err", err)
	}
}

// giveBack removes the entries released (and the expired ones while at it).
func (f *Fleet) giveBack(ctx context.Context) {
	f.mu.Lock()
	now := time.Now()
	for h, exp := range f.releases {
		if now.After(exp) {
			delete(f.releases, h) // expired: nothing left to give back
		}
	}
	todo := maps.Clone(f.releases)
	f.mu.Unlock()
	if len(todo) == 0 {
		return
	}
	err := f.editSlots(ctx, "release", func(hs map[string]time.Time, _ time.Time) bool {
		n := len(hs)
		for h := range todo {
			delete(hs, h)
		}
		return len(hs) != n
	})
	if err != nil {
		f.log.Warn("fleet slot not given back yet; retried each renew", "err", err)
		return
	}
	f.mu.Lock()
	for h := range todo {
		delete(f.releases, h)
	}
	f.mu.Unlock()
}

// editSlots applies edit to the slots Lease's live holders with optimistic retries. edit
// returns whether it changed anything worth a write.
func (f *Fleet) editSlots(ctx context.Context, op string, edit func(map[string]time.Time, time.Time) bool) error {
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Renew)
	defer cancel()
	leases := f.cs.Leases(f.cfg.Namespace)
	name := slotsName(f.cfg.Group)
	f.mu.Lock()
	cur := f.leases[name]
	f.mu.Unlock()
	for try := range takeTries {
		if try > 0 {
			pause(ctx, try)
		}
		if cur == nil {
			got, err := leases.Get(ctx, name, metav1.GetOptions{})
			f.count("get", err)
			if apierrors.IsNotFound(err) {
				return nil // no slots at all: nothing to renew or give back
			}
			if err != nil {
				return err
			}
			cur = got
		}
		l := cur.DeepCopy()
		now := time.Now()
		hs, err := holders(l)
		if err != nil {
			return err
		}
		if !edit(live(hs, now), now) {
			return nil
		}
		setHolders(l, hs)
		got, err := leases.Update(ctx, l, metav1.UpdateOptions{})
		f.count(op, err)
		if err == nil {
			f.store(got)
			return nil
		}
		if !apierrors.IsConflict(err) {
			return err
		}
		cur = nil
	}
	return errors.New("slots lease: too many conflicting writes")
}

// holders decodes the slots Lease's holder → expiry. A damaged annotation (an edit by hand)
// is an error, never silently more room: takes are refused until it is fixed or deleted.
func holders(l *coordv1.Lease) (map[string]time.Time, error) {
	hs := map[string]time.Time{}
	if s := l.Annotations[AnnHolders]; s != "" {
		if err := json.Unmarshal([]byte(s), &hs); err != nil {
			return nil, fmt.Errorf("lease %s: annotation %s is not a JSON map of holder to expiry (delete the annotation to reset): %w", l.Name, AnnHolders, err)
		}
	}
	return hs, nil
}

// live drops the expired entries.
func live(hs map[string]time.Time, now time.Time) map[string]time.Time {
	for h, exp := range hs {
		if !now.Before(exp) {
			delete(hs, h)
		}
	}
	return hs
}

// setHolders writes hs into l, and the holder count into the spec for `kubectl get leases`.
func setHolders(l *coordv1.Lease, hs map[string]time.Time) {
	b, _ := json.Marshal(hs)
	if l.Annotations == nil {
		l.Annotations = map[string]string{}
	}
	l.Annotations[AnnHolders] = string(b)
	ids := strings.Join(slices.Sorted(maps.Keys(hs)), ",")
	l.Spec.HolderIdentity = &ids
	now := metav1.NowMicro()
	l.Spec.RenewTime = &now
}

// limit is fleet.max_active against the live members now.
func (f *Fleet) limit(now time.Time) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, _, limit := f.countLocked(now)
	return limit
}

// countLocked returns the live members, the slots in use and the limit. f.mu is held.
func (f *Fleet) countLocked(now time.Time) (members, used, limit int) {
	for _, l := range f.leases {
		switch l.Labels[LabelKind] {
		case KindMember:
			if alive(l, now) {
				members++
			}
		case KindSlots:
			hs, _ := holders(l)
			used = len(live(hs, now))
		}
	}
	return members, used, f.cfg.MaxActive.Of(max(members, 1))
}

// alive reports whether a member Lease was renewed within its duration.
func alive(l *coordv1.Lease, now time.Time) bool {
	if l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
		return false
	}
	return now.Before(l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second))
}
