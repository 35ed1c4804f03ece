package fleet

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
)

// Run keeps the membership until ctx ends: it renews the member Lease and the slots held
// every fleet.renew, watches the group's Leases, gives back released slots, and tells
// OnState when the halt or the contact changes. On the way out it deletes the member Lease.
func (f *Fleet) Run(ctx context.Context) {
	f.ev.start(ctx)
	go f.watch(ctx)
	t := time.NewTicker(f.cfg.Renew)
	defer t.Stop()
	// expire fires when the last confirmation turns stale, so the switch trips on time
	// rather than at the next tick.
	expire := time.NewTimer(f.cfg.StaleAfter)
	defer expire.Stop()
	f.tick(ctx)
	for {
		f.mu.Lock()
		if !f.confirmed.IsZero() {
			expire.Reset(time.Until(f.confirmed.Add(f.cfg.StaleAfter)) + time.Millisecond)
		}
		f.mu.Unlock()
		select {
		case <-expire.C:
			f.judge()
		case <-ctx.Done():
			// The runner has reverted what it could: give its slots back before going.
			gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			f.giveBack(gctx)
			cancel()
			f.leave()
			f.ev.stop()
			return
		case <-t.C:
			f.tick(ctx)
		case <-f.kick:
			f.giveBack(ctx)
			f.judge()
		}
	}
}

// tick is one renew: the member Lease, then the slots held and the slots to give back, then
// whether the group's state is still confirmed.
func (f *Fleet) tick(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, f.cfg.Renew)
	err := f.renew(rctx)
	cancel()
	f.mu.Lock()
	if err != nil {
		f.renewErr = err.Error()
	} else {
		f.renewed, f.renewErr = time.Now(), ""
	}
	f.mu.Unlock()
	if err == nil {
		f.keepSlots(ctx)
		f.giveBack(ctx)
	}
	f.judge()
}

// renew writes the member Lease: holder, renew time, and what is in place here.
func (f *Fleet) renew(ctx context.Context) error {
	leases := f.cs.Leases(f.cfg.Namespace)
	name := memberName(f.cfg.Group, f.pod.Name)
	f.mu.Lock()
	cur := f.leases[name]
	in := slices.SortedFunc(maps.Values(f.inPlace), func(a, b Placed) int { return cmp.Compare(a.Run, b.Run) })
	f.mu.Unlock()
	b, _ := json.Marshal(in)
	now := metav1.NowMicro()
	var l *coordv1.Lease
	if cur != nil {
		l = cur.DeepCopy()
	} else {
		l = &coordv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.cfg.Namespace}}
	}
	l.Labels = map[string]string{LabelGroup: f.cfg.Group, LabelKind: KindMember}
	if l.Annotations == nil {
		l.Annotations = map[string]string{}
	}
	l.Annotations[AnnInPlace] = string(b)
	l.Annotations[AnnInstance] = f.agent.Instance
	holder := f.pod.Name + "/" + f.agent.Instance
	if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != holder {
		l.Spec.AcquireTime = &now
		l.Spec.HolderIdentity = &holder
	}
	l.Spec.RenewTime = &now
	l.Spec.LeaseDurationSeconds = ptr.To(int32(math.Ceil(f.cfg.StaleAfter.Seconds())))
	var err error
	var got *coordv1.Lease
	if cur == nil {
		got, err = leases.Create(ctx, l, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			got, err = f.refetchUpdate(ctx, name, l)
		}
	} else {
		got, err = leases.Update(ctx, l, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			got, err = f.refetchUpdate(ctx, name, l)
		}
	}
	f.count("renew", err)
	if err != nil {
		return fmt.Errorf("renew member lease %s: %w", name, err)
	}
	f.store(got)
	return nil
}

// refetchUpdate writes l's spec, labels and annotations onto the Lease as it is now (another
// writer, or our own watch, was ahead of the cache), or creates it if it is gone.
func (f *Fleet) refetchUpdate(ctx context.Context, name string, l *coordv1.Lease) (*coordv1.Lease, error) {
	leases := f.cs.Leases(f.cfg.Namespace)
	cur, err := leases.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		l.ResourceVersion = ""
		return leases.Create(ctx, l, metav1.CreateOptions{})
	}
	if err != nil {
		return nil, err
	}
	cur.Labels, cur.Annotations, cur.Spec = l.Labels, l.Annotations, l.Spec
	return leases.Update(ctx, cur, metav1.UpdateOptions{})
}

// leave deletes the member Lease (a clean exit: the member is gone at once, not after
// stale_after). It reads the Lease first rather than trusting the cache: a renew cut short by
// the exit may have landed without its answer. Best effort: the Lease expires anyway.
func (f *Fleet) leave() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	leases := f.cs.Leases(f.cfg.Namespace)
	name := memberName(f.cfg.Group, f.pod.Name)
	holder := f.pod.Name + "/" + f.agent.Instance
	for range 3 {
		cur, err := leases.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return
		}
		if err != nil {
			f.log.Debug("leave: member lease not deleted; it expires", "err", err)
			return
		}
		// Only the Lease this instance holds: a newer agent of the same pod may own it now.
		if cur.Spec.HolderIdentity == nil || *cur.Spec.HolderIdentity != holder {
			return
		}
		err = leases.Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &cur.ResourceVersion}})
		if err == nil || apierrors.IsNotFound(err) {
			return
		}
		if !apierrors.IsConflict(err) {
			f.log.Debug("leave: member lease not deleted; it expires", "err", err)
			return
		}
	}
}

// watch keeps the cache of the group's Leases: a list, then a watch from its version; a
// broken watch lists again. While it is down, the group's state is not confirmed.
func (f *Fleet) watch(ctx context.Context) {
	leases := f.cs.Leases(f.cfg.Namespace)
	sel := LabelGroup + "=" + f.cfg.Group
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		list, err := leases.List(ctx, metav1.ListOptions{LabelSelector: sel})
		f.count("list", err)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			f.down("list: " + err.Error())
			sleep(ctx, backoff)
			backoff = min(2*backoff, f.cfg.Renew)
			continue
		}
		f.replace(list.Items)
		rv := list.ResourceVersion
		for ctx.Err() == nil {
			w, err := leases.Watch(ctx, metav1.ListOptions{LabelSelector: sel, ResourceVersion: rv,
				AllowWatchBookmarks: true, TimeoutSeconds: ptr.To(int64(300 + time.Now().UnixNano()%300))})
			f.count("watch", err)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				f.down("watch: " + err.Error())
				break
			}
			f.up()
			backoff = 100 * time.Millisecond
			var gone bool
			var why string
			rv, gone, why = f.follow(w, rv)
			w.Stop()
			if ctx.Err() != nil {
				return
			}
			f.down(why)
			if gone {
				break // too old, or an error: list again
			}
		}
		sleep(ctx, backoff)
	}
}

// follow applies a watch's events to the cache until the stream ends. It returns the last
// resourceVersion seen, whether the caller must list again, and why the stream ended.
func (f *Fleet) follow(w watch.Interface, rv string) (string, bool, string) {
	for ev := range w.ResultChan() {
		switch ev.Type {
		case watch.Error:
			return rv, true, "watch: " + apierrors.FromObject(ev.Object).Error()
		case watch.Bookmark:
			if l, ok := ev.Object.(*coordv1.Lease); ok {
				rv = l.ResourceVersion
			}
			continue
		}
		l, ok := ev.Object.(*coordv1.Lease)
		if !ok {
			continue
		}
		rv = l.ResourceVersion
		f.mu.Lock()
		if ev.Type == watch.Deleted {
			delete(f.leases, l.Name)
		} else if old := f.leases[l.Name]; old == nil || newer(l, old) {
			f.leases[l.Name] = l
		}
		f.mu.Unlock()
		if l.Labels[LabelKind] == KindState {
			f.judge()
		}
	}
	return rv, false, "the watch closed"
}

// newer reports whether a is a later version of the same object than b. Versions are opaque
// to clients, but for one object from one API server they only grow; compare them as numbers
// when both are, and otherwise trust the order of arrival.
func newer(a, b *coordv1.Lease) bool {
	x, err1 := strconv.ParseUint(a.ResourceVersion, 10, 64)
	y, err2 := strconv.ParseUint(b.ResourceVersion, 10, 64)
	if err1 != nil || err2 != nil {
		return true
	}
	return x >= y
}

func (f *Fleet) replace(items []coordv1.Lease) {
	f.mu.Lock()
	f.leases = make(map[string]*coordv1.Lease, len(items))
	for i := range items {
		f.leases[items[i].Name] = &items[i]
	}
	f.mu.Unlock()
	f.judge()
}

// store puts a Lease this agent just wrote into the cache, unless the watch already has a
// newer one.
func (f *Fleet) store(l *coordv1.Lease) {
	f.mu.Lock()
	if old := f.leases[l.Name]; old == nil || newer(l, old) {
		f.leases[l.Name] = l
	}
	f.mu.Unlock()
}

func (f *Fleet) up() {
	f.mu.Lock()
	f.watching, f.watchErr = true, ""
	f.mu.Unlock()
	f.judge() // contact may be confirmed now, not at the next renew
}

func (f *Fleet) down(why string) {
	f.mu.Lock()
	was := f.watching
	f.watching, f.watchErr = false, why
	f.mu.Unlock()
	if was {
		f.log.Warn("fleet watch broken", "err", why)
	}
}

// judge decides the State from what renew and watch last said, and tells OnState if it changed.
func (f *Fleet) judge() {
	now := time.Now()
	f.mu.Lock()
	if f.watching && f.renewErr == "" && !f.renewed.IsZero() {
		f.confirmed = f.renewed
	}
	st := State{Contact: !f.confirmed.IsZero() && now.Sub(f.confirmed) <= f.cfg.StaleAfter}
	if !st.Contact {
		st.Detail = f.whyNot(now)
	}
	if s := f.leases[stateName(f.cfg.Group)]; s != nil {
		st.Halted = s.Annotations[AnnHalted] == "true"
		st.Reason, st.By = s.Annotations[AnnReason], s.Annotations[AnnBy]
		st.Since, _ = time.Parse(time.RFC3339, s.Annotations[AnnSince])
	}
	if !st.Contact && !f.confirmed.IsZero() {
		// Without contact, keep the halt last seen: stale state must not un-halt anything.
		st.Halted, st.Reason, st.By, st.Since = f.state.Halted, f.state.Reason, f.state.By, f.state.Since
	}
	members, used, limit := f.countLocked(now)
	changed := st != f.state
	was := f.state
	f.state = st
	f.mu.Unlock()
	f.m.FleetContact.Set(b2f(st.Contact))
	f.m.FleetHalted.Set(b2f(st.Halted))
	f.m.FleetMembers.Set(float64(members))
	f.m.FleetSlots.WithLabelValues("used").Set(float64(used))
	f.m.FleetSlots.WithLabelValues("max").Set(float64(limit))
	if !changed {
		return
	}
	switch {
	case was.Contact && !st.Contact:
		f.log.Error("fleet state not confirmed: faults reverted, nothing fires until contact returns", "detail", st.Detail, "stale_after", f.cfg.StaleAfter)
	case !was.Contact && st.Contact:
		f.log.Info("fleet state confirmed", "members", members, "max_active", limit)
	}
	if st.Halted != was.Halted {
		if st.Halted {
			f.log.Warn("fleet halted", "reason", st.Reason, "by", st.By)
			f.ev.halt(st)
		} else if st.Contact {
			f.log.Info("fleet resumed", "by", st.By)
			f.ev.resume(st)
		}
	}
	f.notify(st)
}

// whyNot says why the state is not confirmed. f.mu is held.
func (f *Fleet) whyNot(now time.Time) string {
	var why string
	switch {
	case f.renewErr != "":
		why = f.renewErr
	case !f.watching && f.watchErr != "":
		why = f.watchErr
	case !f.watching:
		why = "the watch is not established yet"
	case f.renewed.IsZero():
		return "waiting for the fleet's state from the Kubernetes API"
	default:
		why = "no confirmation"
	}
	if f.confirmed.IsZero() {
		return "never confirmed: " + why
	}
	return fmt.Sprintf("not confirmed for %s: %s", now.Sub(f.confirmed).Round(time.Second), why)
}

// State returns the group's state as last judged.
func (f *Fleet) State() State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state
}

func (f *Fleet) count(op string, err error) {
	result := "ok"
	switch {
	case err == nil:
	case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err):
		result = "conflict"
	default:
		result = "error"
	}
	f.m.FleetRequests.WithLabelValues(op, result).Inc()
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
