package routing

import (
	"github.com/lbd/lbd/config"
)

// FileRouting is the part of a config file that admin changes also touch:
// by pool, the backends, the policy with sticky, and the canary. The state
// file records it as last applied, so that a restart can tell what the
// file changed while lbd was down.
type FileRouting struct {
	Pools map[string]PoolRouting `json:"pools"`
}

// PoolRouting is one pool's part of FileRouting (URLs normalised, protocol
// filled in, a canary without a share cleared).
type PoolRouting struct {
	Backends []config.Backend `json:"backends"`
	Policy   string           `json:"policy"`
	Sticky   config.Sticky    `json:"sticky"`
	Canary   config.Canary    `json:"canary"`
}

// FileOf returns c's routing.
func FileOf(c *config.Config) FileRouting {
	f := FileRouting{Pools: map[string]PoolRouting{}}
	for _, name := range c.PoolNames() {
		p, _ := c.PoolConfig(name)
		r := PoolRouting{Policy: p.Policy, Sticky: p.Sticky, Canary: normCanary(p.Canary)}
		for _, b := range p.Backends {
			if u, err := config.NormalizeURL(b.URL); err == nil {
				b.URL = u
			}
			if b.Protocol == "" {
				b.Protocol = "http1"
			}
			r.Backends = append(r.Backends, b)
		}
		f.Pools[name] = r
	}
	return f
}

func normCanary(c config.Canary) config.Canary {
	if c.Backend == "" || c.Percent <= 0 {
		return config.Canary{}
	}
	if u, err := config.NormalizeURL(c.Backend); err == nil {
		c.Backend = u
	}
	return c
}

func (p PoolRouting) backend(url string) (config.Backend, bool) {
	for _, b := range p.Backends {
		if b.URL == url {
			return b, true
		}
	}
	return config.Backend{}, false
}

// Rebase settles a config file edit (prev, the file as last applied, to
// next) against the admin changes in ov, as a three-way merge does: what
// the file changed wins, what it left alone keeps its admin change.
//
//   - A pool the file no longer has takes its admin changes with it.
//   - A backend the file removed goes, with every admin change to it.
//   - A backend the file added that the admin API had added already takes
//     the file's settings (its drain stays: a file cannot drain).
//   - A weight or cap the file changed takes the file's value; a policy
//     (with sticky) or a canary the file changed takes the file's.
//   - A backend the admin API removed stays removed even if the file
//     changed its settings: the operator took it out on purpose.
//
// Admin changes to discovered members are not the file's business and stay.
func Rebase(ov Overlay, prev, next FileRouting) Overlay {
	out := Overlay{Pools: map[string]PoolOverlay{}}
	for name, po := range ov.Pools {
		np, ok := next.Pools[name]
		if !ok {
			continue
		}
		pp := prev.Pools[name]
		po = po.clone()
		for u, o := range po.Backends {
			pb, inPrev := pp.backend(u)
			nb, inNext := np.backend(u)
			switch {
			case inPrev && !inNext:
				delete(po.Backends, u)
			case !inPrev && inNext:
				po.Backends[u] = BackendOverlay{Draining: o.Draining}
			case inPrev && inNext:
				if pb.Weight != nb.Weight {
					o.Weight = nil
				}
				if pb.MaxInflight != nb.MaxInflight {
					o.MaxInflight = nil
				}
				po.Backends[u] = o
			}
		}
		if pp.Policy != np.Policy || pp.Sticky != np.Sticky {
			po.Policy = nil
		}
		if pp.Canary != np.Canary {
			po.Canary = nil
		}
		out = out.with(name, po)
	}
	return out
}
