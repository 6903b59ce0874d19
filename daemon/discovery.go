package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/discovery"
	"github.com/lbd/lbd/routing"
)

// The owner runs one discovery source (package discovery) per entry of
// each pool's "discovery" list. A source hands its whole member set to the
// owner at its first believed answer and at every change (discoveredMsg),
// and the owner lays it into the routing table like any other change: new
// members start unhealthy until their first probe passes, then warm up;
// members that leave drain, then stop. Discovered sets are not persisted:
// DNS gives them again at the next start. A source that fails keeps its
// last good set, so does the owner.

// sourceKey names a source: its pool and its name ("dns:srv:NAME").
type sourceKey struct{ pool, name string }

type runningSource struct {
	src *discovery.Source
	cfg config.Discovery
}

type (
	// discoveredMsg is a source's new member set.
	discoveredMsg struct {
		u     discovery.Update
		reply chan<- error
	}
	// syncSourcesMsg starts the sources of the config the owner runs (at
	// start, once the owner's address exists for the sources to deliver to).
	syncSourcesMsg struct{ reply chan<- error }
)

// wantedSources lists the discovery entries of every pool of cfg.
func wantedSources(cfg *config.Config) map[sourceKey]config.Discovery {
	out := map[sourceKey]config.Discovery{}
	for _, name := range cfg.PoolNames() {
		p, _ := cfg.PoolConfig(name)
		for _, d := range p.Discovery {
			out[sourceKey{name, d.SourceName()}] = d
		}
	}
	return out
}

// keepDiscovered drops the members of sources that next no longer has,
// so that a reload removing a source removes its members in the same plan.
func keepDiscovered(disc routing.Discovered, next *config.Config) routing.Discovered {
	want := wantedSources(next)
	out := routing.Discovered{}
	for pool, bySource := range disc {
		for name, members := range bySource {
			if _, ok := want[sourceKey{pool, name}]; !ok {
				continue
			}
			if out[pool] == nil {
				out[pool] = map[string][]config.Backend{}
			}
			out[pool][name] = members
		}
	}
	return out
}

// syncSources starts the sources cfg wants that do not run, and stops the
// ones it no longer wants or wants with other settings (a changed source
// starts anew; its members stay until its first answer replaces them).
func (o *owner) syncSources(ctx context.Context, cfg *config.Config) error {
	want := wantedSources(cfg)
	var errs []error
	for k, rs := range o.sources {
		if d, ok := want[k]; ok && d == rs.cfg {
			continue
		}
		if err := rs.src.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("discovery %s of pool %s: %w", k.name, k.pool, err))
		}
		delete(o.sources, k)
	}
	for _, k := range sortedSourceKeys(want) {
		if _, ok := o.sources[k]; ok {
			continue
		}
		src, err := discovery.New(discovery.Config{
			Source: want[k], Pool: k.pool, Apply: o.deliver, Metrics: o.d.discoveryMetrics,
			Registry: o.d.registry, Logger: o.d.log,
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		o.sources[k] = &runningSource{src: src, cfg: want[k]}
	}
	return errors.Join(errs...)
}

func sortedSourceKeys(m map[sourceKey]config.Discovery) []sourceKey {
	keys := make([]sourceKey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b sourceKey) int {
		if c := strings.Compare(a.pool, b.pool); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	return keys
}

// deliver is every source's sink: it asks the owner to take the update,
// and returns when ctx ends (the source stopping) if the owner is busy.
func (o *owner) deliver(ctx context.Context, u discovery.Update) error {
	err, askErr := askOwner(ctx, o, func(r chan<- error) any { return discoveredMsg{u, r} })
	if askErr != nil {
		return askErr
	}
	return err
}

// discovered lays a source's new member set into the routing table.
func (o *owner) discovered(m discoveredMsg) {
	u := m.u
	if _, ok := o.sources[sourceKey{u.Pool, u.Source}]; !ok {
		m.reply <- nil // a source stopped by a reload, delivering late
		return
	}
	members := make([]config.Backend, len(u.Members))
	for i, mb := range u.Members {
		members[i] = mb.Backend()
	}
	disc := routing.Discovered{}
	for pool, bySource := range o.disc {
		disc[pool] = map[string][]config.Backend{}
		for name, ms := range bySource {
			disc[pool][name] = ms
		}
	}
	if disc[u.Pool] == nil {
		disc[u.Pool] = map[string][]config.Backend{}
	}
	disc[u.Pool][u.Source] = members
	next := routing.Effective(o.file, o.ov, disc)
	plan := routing.Diff(o.cur, next)
	ctx, cancel := context.WithTimeout(context.Background(), askTimeout)
	defer cancel()
	err := o.carryOut(ctx, plan, next, whyDiscovery)
	o.disc, o.cur = disc, next
	o.publish()
	if len(plan.Backends) > 0 {
		var added, removed []string
		for _, s := range plan.Backends {
			switch s.Action {
			case routing.Added:
				added = append(added, s.URL)
			case routing.Removed:
				removed = append(removed, s.URL)
			}
		}
		o.d.log.Info("discovery changed the pool", "pool", u.Pool, "source", u.Source,
			"members", len(members), "added", added, "removed", removed, "err", err)
	}
	m.reply <- err
}

// discoveryStatus is GET /admin/discovery: every source's status, by pool then name.
func (o *owner) discoveryStatus() any {
	v := o.view.Load()
	out := make([]*discovery.Status, 0, len(v.sources))
	for _, s := range v.sources {
		out = append(out, s.Status())
	}
	return map[string]any{"sources": out}
}
