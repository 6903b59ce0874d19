package routing

import (
	"errors"
	"fmt"
	"strings"

	"github.com/lbd/lbd/config"
)

// Errors an admin change is refused with; the admin API maps them to
// statuses (404, 404, 409, 409, 400).
var (
	ErrUnknownPool = errors.New("no such pool")
	ErrNotFound    = errors.New("no such backend")
	ErrExists      = errors.New("backend already exists")
	// ErrOwned refuses removing a backend that a discovery source owns: it
	// leaves the pool when the source's answer no longer has it.
	ErrOwned   = errors.New("backend belongs to a discovery source")
	ErrInvalid = errors.New("invalid argument")
)

// invalid is an ErrInvalid whose text is the problem alone, as a config
// file's problems read ("weight: must be between 1 and 1000, got 0").
type invalid struct{ msg string }

func (e invalid) Error() string        { return e.msg }
func (e invalid) Is(target error) bool { return target == ErrInvalid }

func invalidf(format string, args ...any) error { return invalid{fmt.Sprintf(format, args...)} }

// invalidOf turns a config validation error into an ErrInvalid, its
// problems on one line.
func invalidOf(err error) error {
	if err == nil {
		return nil
	}
	return invalid{strings.ReplaceAll(err.Error(), "\n", "; ")}
}

// Op names an admin change.
type Op string

// The admin changes.
const (
	OpAdd     Op = "add"
	OpRemove  Op = "remove"
	OpDrain   Op = "drain"
	OpUndrain Op = "undrain"
	OpWeight  Op = "weight"
	OpCap     Op = "cap"
	OpPolicy  Op = "policy"
	OpCanary  Op = "canary"
)

// Change is one admin call, addressed to a pool ("" is "default").
type Change struct {
	Op   Op     `json:"op"`
	Pool string `json:"pool"`
	// URL names the backend (drain, undrain, weight, cap, remove).
	URL string `json:"url,omitempty"`
	// Backend is the backend to add (OpAdd); weight 0 means 1, protocol "" means http1.
	Backend config.Backend `json:"backend,omitzero"`
	// N is the new weight (OpWeight) or cap (OpCap).
	N int `json:"n,omitempty"`
	// Policy, StickyEnabled and StickyKey set the policy (OpPolicy); what
	// is left out ("", nil) keeps its current value.
	Policy        string `json:"policy,omitempty"`
	StickyEnabled *bool  `json:"sticky_enabled,omitempty"`
	StickyKey     string `json:"sticky_key,omitempty"`
	// Canary sets the canary (OpCanary); Backend "" clears it.
	Canary config.Canary `json:"canary,omitzero"`
	// By says who asked (the admin caller's address), for the log line.
	By string `json:"-"`
}

// PoolName is the change's pool, "default" when none is given.
func (c Change) PoolName() string {
	if c.Pool == "" {
		return config.DefaultPool
	}
	return c.Pool
}

// Apply checks c against the table lbd runs (t, built by Effective from ov)
// and returns ov with c recorded. It refuses what cannot be done with one
// of the errors above, naming what was wrong, and then ov is unchanged.
// Admin input is judged by the config file's own rules (config.Backend's
// Validate, CheckPolicy), so nothing the admin API accepts can make the
// state file or a later start fail.
func Apply(t *Table, ov Overlay, c Change) (Overlay, error) {
	name := c.PoolName()
	pool, err := t.Lookup(name)
	if err != nil {
		return ov, err
	}
	po := ov.pool(name)
	switch c.Op {
	case OpAdd:
		err = add(pool, po, c.Backend)
	case OpRemove:
		err = remove(pool, po, c.URL)
	case OpDrain, OpUndrain, OpWeight, OpCap:
		err = setBackend(pool, po, c)
	case OpPolicy:
		po.Policy, err = policyOf(pool, c)
	case OpCanary:
		po.Canary, err = canaryOf(pool, c.Canary)
	default:
		err = invalidf("op: %q is not an admin change", c.Op)
	}
	if err != nil {
		return ov, err
	}
	return ov.with(name, po), nil
}

// Lookup returns the named pool, or an ErrUnknownPool that lists the pools.
func (t *Table) Lookup(name string) (*Pool, error) {
	if p, ok := t.Pool(name); ok {
		return p, nil
	}
	return nil, fmt.Errorf("%w %q; pools are %s", ErrUnknownPool, name, strings.Join(poolNames(t), ", "))
}

func poolNames(t *Table) []string {
	out := make([]string, len(t.Pools))
	for i, p := range t.Pools {
		out[i] = p.Name
	}
	return out
}

func add(pool *Pool, po PoolOverlay, b config.Backend) error {
	if b.Weight == 0 {
		b.Weight = 1
	}
	if b.Protocol == "" {
		b.Protocol = "http1"
	}
	if err := b.Validate(); err != nil {
		return invalidOf(err)
	}
	b.URL, _ = config.NormalizeURL(b.URL) // valid: Validate checked it
	if cur, ok := pool.Backend(b.URL); ok {
		return fmt.Errorf("%w: %s is in pool %s (source %s)", ErrExists, b.URL, pool.Name, cur.Source)
	}
	o := po.Backends[b.URL]
	if o.Removed { // the file lists it and the admin API had removed it: bring it back as asked
		weight, capN := b.Weight, b.MaxInflight
		po.Backends[b.URL] = BackendOverlay{Weight: &weight, MaxInflight: &capN}
		return nil
	}
	po.Backends[b.URL] = BackendOverlay{Added: &b}
	return nil
}

func remove(pool *Pool, po PoolOverlay, url string) error {
	b, err := lookup(pool, url)
	if err != nil {
		return err
	}
	switch {
	case Discovery(b.Source):
		return fmt.Errorf("%w: %s comes from %s and leaves the pool when that source no longer lists it; drain it to take it out of service", ErrOwned, b.URL, b.Source)
	case b.Source == SourceAdmin:
		delete(po.Backends, b.URL)
	default:
		po.Backends[b.URL] = BackendOverlay{Removed: true}
	}
	return nil
}

func lookup(pool *Pool, url string) (Backend, error) {
	u, err := config.NormalizeURL(url)
	if err != nil {
		return Backend{}, invalidf("url: %v", err)
	}
	b, ok := pool.Backend(u)
	if !ok {
		return Backend{}, fmt.Errorf("%w: %s in pool %s", ErrNotFound, u, pool.Name)
	}
	return b, nil
}

func setBackend(pool *Pool, po PoolOverlay, c Change) error {
	b, err := lookup(pool, c.URL)
	if err != nil {
		return err
	}
	o := po.Backends[b.URL]
	switch c.Op {
	case OpDrain:
		o.Draining = ptrTo(true)
	case OpUndrain:
		o.Draining = nil // back to the file's word: no backend is drained by a config file
	case OpWeight:
		if c.N < 1 || c.N > config.MaxWeight {
			return invalidf("weight: must be between 1 and %d, got %d", config.MaxWeight, c.N)
		}
		if o.Added != nil {
			o.Added.Weight = c.N
		} else {
			o.Weight = ptrTo(c.N)
		}
	case OpCap:
		if c.N < 0 || c.N > config.MaxInflight {
			return invalidf("max_inflight: must be between 0 (no cap) and %d, got %d", config.MaxInflight, c.N)
		}
		if o.Added != nil {
			o.Added.MaxInflight = c.N
		} else {
			o.MaxInflight = ptrTo(c.N)
		}
	}
	po.Backends[b.URL] = o
	return nil
}

func policyOf(pool *Pool, c Change) (*Policy, error) {
	p := Policy{Policy: pool.Policy, Sticky: pool.Sticky}
	if c.Policy != "" {
		p.Policy = c.Policy
	}
	if c.StickyEnabled != nil {
		p.Sticky.Enabled = *c.StickyEnabled
	}
	if c.StickyKey != "" {
		p.Sticky.Key = c.StickyKey
	}
	if p.Sticky.Key == "" {
		p.Sticky.Key = "ip"
	}
	if err := config.CheckPolicy(p.Policy, p.Sticky); err != nil {
		return nil, invalidOf(err)
	}
	return &p, nil
}

func canaryOf(pool *Pool, c config.Canary) (*config.Canary, error) {
	if c.Backend == "" {
		return &config.Canary{}, nil
	}
	if err := config.CheckCanaryPercent(c.Percent); err != nil {
		return nil, invalidOf(err)
	}
	b, err := lookup(pool, c.Backend)
	if err != nil {
		return nil, err
	}
	return &config.Canary{Backend: b.URL, Percent: c.Percent}, nil
}

func ptrTo[T any](v T) *T { return &v }
