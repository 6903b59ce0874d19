package routing

import (
	"maps"
	"slices"

	"github.com/lbd/lbd/config"
)

// Overlay is what the admin API changed, by pool: the state file and the
// fleet's etcd prefix keep it, and Effective lays it over the config file.
// Each entry is one fact that one admin call sets ("this backend is
// drained", "this pool's policy is lc"), so that two changes to different
// facts never touch the same entry, and a config file edit can drop exactly
// the entries it supersedes (Rebase).
//
// An Overlay is a value: Apply and Rebase return a new one and leave the
// old one as it was.
type Overlay struct {
	Pools map[string]PoolOverlay `json:"pools,omitempty"`
}

// PoolOverlay is one pool's admin changes.
type PoolOverlay struct {
	Policy   *Policy                   `json:"policy,omitempty"`
	Canary   *config.Canary            `json:"canary,omitempty"`   // {"backend": "", "percent": 0} clears the file's canary
	Backends map[string]BackendOverlay `json:"backends,omitempty"` // by normalised URL
}

// Policy is a pool's policy with its sticky settings, set together.
type Policy struct {
	Policy string        `json:"policy"`
	Sticky config.Sticky `json:"sticky"`
}

// BackendOverlay is what the admin API says about one backend of a pool.
type BackendOverlay struct {
	// Added is the backend's spec when the admin API added it (it is not
	// in the config file, or was not when it was added).
	Added *config.Backend `json:"added,omitempty"`
	// Removed says the admin API removed a backend the file lists.
	Removed     bool  `json:"removed,omitempty"`
	Weight      *int  `json:"weight,omitempty"`
	MaxInflight *int  `json:"max_inflight,omitempty"`
	Draining    *bool `json:"draining,omitempty"`
}

// empty reports an entry that says nothing.
func (o BackendOverlay) empty() bool {
	return o.Added == nil && !o.Removed && o.Weight == nil && o.MaxInflight == nil && o.Draining == nil
}

func (o BackendOverlay) apply(b Backend) Backend {
	if o.Weight != nil {
		b.Weight = *o.Weight
	}
	if o.MaxInflight != nil {
		b.MaxInflight = *o.MaxInflight
	}
	if o.Draining != nil {
		b.Draining = *o.Draining
	}
	return b
}

func (p PoolOverlay) empty() bool { return p.Policy == nil && p.Canary == nil && len(p.Backends) == 0 }

// Clone returns a deep copy.
func (ov Overlay) Clone() Overlay {
	out := Overlay{Pools: make(map[string]PoolOverlay, len(ov.Pools))}
	for name, p := range ov.Pools {
		out.Pools[name] = p.clone()
	}
	return out
}

func (p PoolOverlay) clone() PoolOverlay {
	out := PoolOverlay{Policy: clonePtr(p.Policy), Canary: clonePtr(p.Canary)}
	if len(p.Backends) > 0 {
		out.Backends = make(map[string]BackendOverlay, len(p.Backends))
		for u, b := range p.Backends {
			out.Backends[u] = BackendOverlay{Added: clonePtr(b.Added), Removed: b.Removed,
				Weight: clonePtr(b.Weight), MaxInflight: clonePtr(b.MaxInflight), Draining: clonePtr(b.Draining)}
		}
	}
	return out
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// pool returns a copy of the named pool's overlay, ready to be changed.
func (ov Overlay) pool(name string) PoolOverlay {
	p := ov.Pools[name].clone()
	if p.Backends == nil {
		p.Backends = map[string]BackendOverlay{}
	}
	return p
}

// with returns ov with the named pool's overlay replaced by p (dropped
// when p says nothing, so an undo leaves no trace in the state).
func (ov Overlay) with(name string, p PoolOverlay) Overlay {
	out := Overlay{Pools: maps.Clone(ov.Pools)}
	if out.Pools == nil {
		out.Pools = map[string]PoolOverlay{}
	}
	for u, b := range p.Backends {
		if b.empty() {
			delete(p.Backends, u)
		}
	}
	if p.empty() {
		delete(out.Pools, name)
	} else {
		out.Pools[name] = p
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
