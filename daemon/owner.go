package daemon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/lbd/lbd/actor"
	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/discovery"
	"github.com/lbd/lbd/fleet"
	"github.com/lbd/lbd/routing"
)

// owner is the routing-config owner: the one actor that owns the config
// file as applied, the admin changes (the overlay), what discovery found,
// the effective routing table, the pools' runtimes and the state file.
// Every change to any of them is a message in its mailbox:
//
//	applyMsg      an admin change: check it (routing.Apply), carry out what
//	              it changes, write the state, answer
//	reloadMsg     a new config file: rebase the admin changes on it, plan,
//	              apply every setting, carry out the routing plan, answer
//	discoveredMsg a discovery source's members changed
//	flushMsg      write the state once for every change queued before it
//	reopenLogMsg  open the access log's file again (SIGUSR1, logrotate)
//
// so a reload and an admin change can never interleave and undo each
// other. Readers (the admin API, /debug/config, the metrics collector) read
// what it publishes: an immutable view, swapped after each change.
type owner struct {
	d   *Daemon
	ref *actor.Ref

	// The actor's state; only its goroutine touches it.
	file    *config.Config
	ov      routing.Overlay
	disc    routing.Discovered
	cur     *routing.Table
	pools   map[string]*poolRuntime
	sources map[sourceKey]*runningSource // discovery sources (discovery.go)
	fkv     map[string]fleet.KV          // fleet mode: the keys of the overlay, with their revisions (fleet.go)
	pending []chan<- error               // answers waiting for the next state write
	dirty   bool                         // the state changed since the last write

	view atomic.Pointer[view]
}

// view is what the owner publishes after every change; never modified.
type view struct {
	file    *config.Config
	table   *routing.Table
	eff     *config.Config
	pools   map[string]*poolRuntime
	sources []*discovery.Source // by pool, then name
}

// The owner's messages.
type (
	applyMsg struct {
		c     routing.Change
		reply chan<- error
	}
	reloadMsg struct {
		next   *config.Config
		dryRun bool
		reply  chan<- reloadResult
	}
	reloadResult struct {
		plan *ReloadPlan
		err  error
	}
	flushMsg struct{}
)

// askTimeout bounds one round of commands to the actors.
const askTimeout = 10 * time.Second

// startOwner builds the routing state from cfg and the state file, starts
// every pool, publishes, and spawns the owner.
func startOwner(d *Daemon, cfg *config.Config) (*owner, error) {
	o := &owner{d: d, file: cfg, pools: map[string]*poolRuntime{}, sources: map[sourceKey]*runningSource{}}
	if err := refuseSelf(routing.Effective(cfg, routing.Overlay{}, o.disc), []string{cfg.Listen}); err != nil {
		return nil, err
	}
	o.ov = o.restoreState(cfg)
	o.cur = routing.Effective(cfg, o.ov, o.disc)
	o.dropSelfFromState(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), askTimeout)
	defer cancel()
	if err := o.carryOut(ctx, routing.Diff(&routing.Table{}, o.cur), o.cur, whyStart); err != nil {
		return nil, err
	}
	o.publish()
	if cfg.StateFile != "" {
		// Written at once: the file records what runs (a corrupt one set
		// aside is replaced) and the config file this start applied.
		o.dirty = true
		if err := o.writeState(); err != nil {
			d.log.Error("state file not written at start", "err", err)
		}
	}
	o.ref = actor.Spawn(d.registry, o, actor.Options{Name: "routing-owner", Kind: "owner", Mailbox: 256, Logger: d.log})
	// The discovery sources start from the owner's goroutine, now that it
	// has an address for them to deliver to.
	if err, askErr := askOwner(ctx, o, func(r chan<- error) any { return syncSourcesMsg{r} }); err != nil || askErr != nil {
		return o, errors.Join(err, askErr)
	}
	return o, nil
}

// askOwner asks the owner and waits for its one answer (actor.Ask).
func askOwner[T any](ctx context.Context, o *owner, mk func(chan<- T) any) (T, error) {
	return actor.Ask(ctx, o.ref, mk)
}

// dropSelfFromState takes out of the restored admin changes a backend that
// is this lbd's own listener (added when lbd listened elsewhere): the
// state file must not keep lbd from starting, nor make it loop.
func (o *owner) dropSelfFromState(cfg *config.Config) {
	for range 100 { // each round removes one; the bound only guards a bug
		var self errSelfBackend
		if err := refuseSelf(o.cur, []string{cfg.Listen}); !errors.As(err, &self) {
			return
		}
		ov, err := routing.Apply(o.cur, o.ov, routing.Change{Op: routing.OpRemove, Pool: self.pool, URL: self.url})
		if err != nil {
			o.d.log.Error("state file: cannot drop a backend that is this lbd", "err", err)
			return
		}
		o.d.log.Warn("state file: backend dropped, it is this lbd's own listener", "pool", self.pool, "url", self.url)
		o.ov, o.cur = ov, routing.Effective(cfg, ov, o.disc)
	}
}

// Receive is the owner's table of contents.
func (o *owner) Receive(msg any) {
	switch m := msg.(type) {
	case applyMsg:
		o.apply(m)
	case reloadMsg:
		plan, err := o.doReload(m.next, m.dryRun)
		m.reply <- reloadResult{plan, err}
	case flushMsg:
		o.flush()
	case reopenLogMsg:
		o.reopenLog(m)
	case discoveredMsg:
		o.discovered(m)
	case fleetStateMsg:
		o.applyFleet(m)
	case fleetPlanMsg:
		m.reply <- o.planFleet(m.c)
	case syncSourcesMsg:
		ctx, cancel := context.WithTimeout(context.Background(), askTimeout)
		err := o.syncSources(ctx, o.file)
		cancel()
		o.publish()
		m.reply <- err
	default:
		o.d.log.Warn("routing owner: unknown message", "type", fmt.Sprintf("%T", msg))
	}
}

// Apply makes an admin change and returns once it is carried out and
// written to the state file.
func (o *owner) Apply(ctx context.Context, c routing.Change) error {
	if link := o.d.fleet.Load(); link != nil {
		return o.applyViaFleet(ctx, link, c)
	}
	err, askErr := actor.Ask(ctx, o.ref, func(r chan<- error) any { return applyMsg{c, r} })
	if askErr != nil {
		return askErr
	}
	return err
}

func (o *owner) apply(m applyMsg) {
	ov, err := routing.Apply(o.cur, o.ov, m.c)
	if err != nil {
		m.reply <- err
		return
	}
	next := routing.Effective(o.file, ov, o.disc)
	if err := refuseSelf(next, o.d.dataListens(o.file.Listen)); err != nil {
		m.reply <- err
		return
	}
	plan := routing.Diff(o.cur, next)
	ctx, cancel := context.WithTimeout(context.Background(), askTimeout)
	defer cancel()
	err = o.carryOut(ctx, plan, next, whyAdmin)
	o.ov, o.cur = ov, next // what was asked for stays asked for, even if an actor failed to take it
	o.publish()
	o.logChange(m.c, plan, err)
	if err != nil {
		m.reply <- err
		return
	}
	o.persistThen(m.reply)
}

// persistThen answers reply after the state is written; changes queued
// behind this one share the write (flushMsg comes after them).
func (o *owner) persistThen(reply chan<- error) {
	if o.file.StateFile == "" {
		reply <- nil
		return
	}
	o.dirty = true
	o.pending = append(o.pending, reply)
	if o.ref.Tell(flushMsg{}) != nil { // the mailbox is full: write now
		o.flush()
	}
}

// flush writes the state if anything changed and answers every change
// waiting for it. A failed write is logged and counted; the changes are
// made, and the next write records them.
func (o *owner) flush() {
	if err := o.writeState(); err != nil {
		o.d.log.Error("admin change applied but the state file was not written", "err", err)
	}
	for _, r := range o.pending {
		r <- nil
	}
	o.pending = nil
}

// publish swaps in a new view of the owner's state.
func (o *owner) publish() {
	pools := make(map[string]*poolRuntime, len(o.pools))
	for k, v := range o.pools {
		pools[k] = v
	}
	var sources []*discovery.Source
	for _, k := range sortedSourceKeys(wantedSources(o.file)) {
		if rs, ok := o.sources[k]; ok {
			sources = append(sources, rs.src)
		}
	}
	o.view.Store(&view{file: o.file, table: o.cur, eff: o.cur.Apply(o.file), pools: pools, sources: sources})
	if o.ref != nil {
		n := 0
		for _, p := range o.cur.Pools {
			n += len(p.Backends)
		}
		o.ref.SetState(fmt.Sprintf("pools=%d backends=%d routes=%d", len(o.cur.Pools), n, len(o.cur.Routes)))
	}
}

func (o *owner) table() *routing.Table           { return o.view.Load().table }
func (o *owner) fileConfig() *config.Config      { return o.view.Load().file }
func (o *owner) effectiveConfig() *config.Config { return o.view.Load().eff }

// pool returns the runtime of the named pool.
func (o *owner) pool(name string) (*poolRuntime, bool) {
	p, ok := o.view.Load().pools[name]
	return p, ok
}

// stop stops the owner, then the discovery sources (a delivery to the
// stopped owner fails at once), then every pool.
func (o *owner) stop(ctx context.Context) error {
	if err := o.ref.StopWait(ctx); err != nil {
		return err
	}
	var errs []error
	for _, s := range o.view.Load().sources {
		errs = append(errs, s.Stop(ctx))
	}
	for _, name := range o.view.Load().file.PoolNames() {
		if p, ok := o.pools[name]; ok {
			if err := p.stopNow(ctx); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// fieldChange is one changed value in an admin change's log line.
type fieldChange struct {
	URL   string `json:"url,omitempty"` // the backend's, for a backend's field
	Field string `json:"field"`
	Old   any    `json:"old"`
	New   any    `json:"new"`
}

// logChange logs an admin change: who asked (the caller's address), what
// for, and every value it changed with its old and new value. A change
// that changed nothing (draining a drained backend) says so.
func (o *owner) logChange(c routing.Change, plan routing.Plan, err error) {
	args := []any{"op", string(c.Op), "pool", c.PoolName(), "by", c.By}
	if c.URL != "" {
		args = append(args, "url", c.URL)
	}
	changes := changesOf(plan)
	args = append(args, "changes", changes)
	if len(changes) == 0 {
		args = append(args, "unchanged", true)
	}
	if err != nil {
		o.d.log.Error("admin change not fully carried out", append(args, ErrAttr(err))...)
		return
	}
	o.d.log.Info("admin change", args...)
}

// changesOf lists a plan's changed values: a backend added or removed as
// a whole (old or new null), a backend's fields, a pool's policy and canary.
func changesOf(plan routing.Plan) []fieldChange {
	out := []fieldChange{}
	entry := func(b routing.Backend) map[string]any {
		return map[string]any{"weight": b.Weight, "max_inflight": b.MaxInflight, "protocol": b.Protocol, "draining": b.Draining}
	}
	for _, s := range plan.Backends {
		switch s.Action {
		case routing.Added:
			out = append(out, fieldChange{URL: s.URL, Field: "backend", New: entry(s.New)})
		case routing.Removed:
			out = append(out, fieldChange{URL: s.URL, Field: "backend", Old: entry(s.Old)})
		default:
			for _, field := range slices.Sorted(maps.Keys(s.Changes)) {
				v := s.Changes[field]
				out = append(out, fieldChange{URL: s.URL, Field: field, Old: v[0], New: v[1]})
			}
		}
	}
	for _, s := range plan.Pools {
		if s.Policy != nil {
			out = append(out, fieldChange{Field: "policy", Old: s.OldPolicy, New: s.Policy})
		}
		if s.Canary != nil {
			out = append(out, fieldChange{Field: "canary", Old: s.OldCanary, New: s.Canary})
		}
	}
	return out
}
