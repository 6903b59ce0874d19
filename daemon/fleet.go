package daemon

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/lbd/lbd/fleet"
	"github.com/lbd/lbd/routing"
)

// Fleet mode. With a "fleet" section the admin changes (the overlay) live
// under the etcd prefix instead of in the state file, one key per fact
// (routing/keys.go), and every replica applies them from its watch:
//
//	admin call -> owner plans the keys the change writes, each guarded by
//	              the revision this replica has for it (fleetPlanMsg)
//	           -> the caller commits them in one etcd transaction
//	              (a moved key is 409, etcd unreachable 503: applied nowhere)
//	           -> waits until this replica's watch has brought it back
//	              (fleet.Link.WaitApplied), then answers
//	watch      -> the link's Sink asks the owner to apply (fleetStateMsg),
//	              which lays the overlay over the file like any change
//
// The owner never waits on etcd, and the writer applies its own change the
// way every replica does, so all of them apply the same changes in the same
// order. The config file stays each replica's base, but it does not rebase
// the fleet's changes: a reload that changes what the fleet state overrides
// leaves the fleet state in force (another replica may not have the edit),
// and the plan says so. Health, EWMA, breakers and ejections stay local.

type (
	// fleetStateMsg replaces the fleet keys (a list) or changes some (a watch event).
	fleetStateMsg struct {
		reset  bool
		kvs    []fleet.KV    // reset: every key
		events []fleet.Event // otherwise: one revision's changes
		rev    int64
		reply  chan<- struct{}
	}
	// fleetPlanMsg asks for the writes of an admin change.
	fleetPlanMsg struct {
		c     routing.Change
		reply chan<- fleetPlan
	}
	fleetPlan struct {
		ops []fleet.Op
		err error
	}
)

// fleetSink is the link's Sink: it hands each list and revision to the
// owner and returns once the owner applied it, so that WaitApplied means
// "visible on this replica".
type fleetSink struct{ o *owner }

func (s fleetSink) Reset(kvs []fleet.KV, rev int64) {
	s.o.fleetState(fleetStateMsg{reset: true, kvs: kvs, rev: rev})
}

func (s fleetSink) Apply(rev int64, events []fleet.Event) {
	s.o.fleetState(fleetStateMsg{events: events, rev: rev})
}

// fleetState waits for the owner to apply m; it returns at once if the
// owner has stopped.
func (o *owner) fleetState(m fleetStateMsg) {
	_, _ = askOwner(context.Background(), o, func(r chan<- struct{}) any { m.reply = r; return m })
}

// applyFleet takes a list or a watch event into the owner's keys and lays
// the overlay they make over the file.
func (o *owner) applyFleet(m fleetStateMsg) {
	if m.reset {
		o.fkv = make(map[string]fleet.KV, len(m.kvs))
		for _, kv := range m.kvs {
			o.fkv[kv.Key] = kv
		}
	}
	for _, ev := range m.events {
		if ev.Kind == fleet.EventDelete {
			delete(o.fkv, ev.KV.Key)
		} else {
			o.fkv[ev.KV.Key] = ev.KV
		}
	}
	values := make(map[string][]byte, len(o.fkv))
	for k, kv := range o.fkv {
		values[k] = kv.Value
	}
	ov, probs := routing.OverlayFromKeys(values)
	for _, p := range probs {
		o.d.log.Error("fleet state entry left out", "problem", p, "revision", m.rev)
	}
	next := routing.Effective(o.file, ov, o.disc)
	plan := routing.Diff(o.cur, next)
	ctx, cancel := context.WithTimeout(context.Background(), askTimeout)
	defer cancel()
	err := o.carryOut(ctx, plan, next, whyFleet(m.rev))
	o.ov, o.cur = ov, next
	o.publish()
	if !plan.Empty() || err != nil {
		o.logChange(routing.Change{Op: "fleet", By: fmt.Sprintf("etcd revision %d", m.rev)}, plan, err)
	}
	m.reply <- struct{}{}
}

// planFleet returns the writes of admin change c: every key of the overlay
// that c changes, guarded by the revision this replica has for it.
func (o *owner) planFleet(c routing.Change) fleetPlan {
	ov, err := routing.Apply(o.cur, o.ov, c)
	if err != nil {
		return fleetPlan{err: err}
	}
	// Only this replica's own listeners can be refused here; a backend that
	// is another replica is found by the Via loop check (508) at runtime.
	if err := refuseSelf(routing.Effective(o.file, ov, o.disc), o.d.dataListens(o.file.Listen)); err != nil {
		return fleetPlan{err: err}
	}
	before, after := o.ov.Keys(), ov.Keys()
	guard := func(key string) int64 {
		if kv, ok := o.fkv[key]; ok {
			return kv.ModRevision
		}
		return fleet.IfAbsent
	}
	var ops []fleet.Op
	for _, key := range sortedKeys(after) {
		if !slices.Equal(before[key], after[key]) {
			ops = append(ops, fleet.Put(key, after[key], guard(key)))
		}
	}
	for _, key := range sortedKeys(before) {
		if _, ok := after[key]; !ok {
			ops = append(ops, fleet.Delete(key, guard(key)))
		}
	}
	o.d.log.Info("admin change sent to the fleet", "op", string(c.Op), "pool", c.PoolName(), "url", c.URL, "by", c.By, "keys", len(ops))
	return fleetPlan{ops: ops}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// applyViaFleet is Apply in fleet mode: plan in the owner, commit in etcd,
// wait for this replica's watch to bring the change back.
func (o *owner) applyViaFleet(ctx context.Context, link *fleet.Link, c routing.Change) error {
	p, err := askOwner(ctx, o, func(r chan<- fleetPlan) any { return fleetPlanMsg{c, r} })
	if err != nil {
		return err
	}
	if p.err != nil || len(p.ops) == 0 {
		return p.err // refused, or already so
	}
	rev, err := link.Commit(ctx, p.ops...)
	if err != nil {
		return err
	}
	return link.WaitApplied(ctx, rev)
}

// startFleet joins the fleet when the config has a fleet section: it
// starts the link (named after the admin address, now bound) and waits a
// bounded time for the first list, so that lbd serves with the fleet's
// state from its first request when etcd answers; when it does not, lbd
// serves the config file and takes the fleet's state when etcd comes back.
func (d *Daemon) startFleet() error {
	f := d.owner.fileConfig().Fleet
	if f == nil {
		return nil
	}
	host, _ := os.Hostname()
	link, err := fleet.New(fleet.Options{
		Etcd: f.Etcd, Name: f.ReplicaName(host, d.AdminAddr()), AdminAddress: d.AdminAddr(), Version: d.opts.Version,
		Sink: fleetSink{d.owner}, Registry: d.registry, Registerer: d.prom, Logger: d.log,
	})
	if err != nil {
		return err
	}
	d.fleet.Store(link)
	d.closers.push("fleet link", link.Stop)
	wait := max(2*f.Etcd.DialTimeout.D(), 5*time.Second)
	if !joined(link, wait) {
		d.log.Warn("fleet: etcd did not answer at start; serving the config file alone until it does, admin changes refused meanwhile",
			"waited", wait.String(), "endpoints", f.Etcd.Endpoints)
		return nil
	}
	st := link.Status().Self
	d.log.Info("fleet state applied", "replica", st.Name, "revision", st.Revision)
	return nil
}

// joined waits up to wait for the link's first list to be applied and its
// session to be live (registered, taking commits): the link says the first
// with a channel and the second in its status, which is read on a short tick.
func joined(link *fleet.Link, wait time.Duration) bool {
	deadline := time.After(wait)
	select {
	case <-link.Synced():
	case <-deadline:
		return false
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !link.Status().Self.Connected {
		select {
		case <-tick.C:
		case <-deadline:
			return false
		}
	}
	return true
}

// fleetStatus is GET /admin/fleet: this replica, its link and the live replicas.
func (d *Daemon) fleetStatus() any {
	link := d.fleet.Load()
	if link == nil {
		return map[string]any{"enabled": false}
	}
	return struct {
		Enabled bool `json:"enabled"`
		*fleet.Status
	}{true, link.Status()}
}
