package routing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/lbd/lbd/config"
)

// StateVersion is the state file format written today. Version 1 (lbd
// before pools: the whole backend set of the one pool) is still read.
const StateVersion = 2

// State is what the state file keeps: the admin changes, and the config
// file's routing as last applied, which a restart rebases them on.
type State struct {
	Version int         `json:"version"`
	Overlay Overlay     `json:"overlay"`
	File    FileRouting `json:"file"`
}

// Encode returns the state file's bytes (stable: maps are sorted).
func (s State) Encode() []byte {
	s.Version = StateVersion
	data, _ := json.MarshalIndent(s, "", "  ") // plain data: cannot fail
	return append(data, '\n')
}

// ErrCorrupt marks a state file that cannot be used at all: not JSON, or
// of an unknown version. One bad entry does not make a file corrupt.
var ErrCorrupt = errors.New("state file unusable")

// DecodeState reads a state file. Each entry is checked on its own by the
// config file's rules; an entry that fails is left out and named in the
// returned problems, and the rest is kept, so one bad line cannot undo
// every other drain and weight. current is the config file's routing now,
// the base of a version 1 file that recorded none.
func DecodeState(data []byte, current FileRouting) (State, []string, error) {
	var head struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return State{}, nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	switch head.Version {
	case 1:
		return decodeV1(data, current)
	case StateVersion:
	default:
		return State{}, nil, fmt.Errorf("%w: version %d; this lbd reads 1 and %d", ErrCorrupt, head.Version, StateVersion)
	}
	var raw struct {
		Version int `json:"version"`
		Overlay struct {
			Pools map[string]struct {
				Policy   json.RawMessage            `json:"policy"`
				Canary   json.RawMessage            `json:"canary"`
				Backends map[string]json.RawMessage `json:"backends"`
			} `json:"pools"`
		} `json:"overlay"`
		File FileRouting `json:"file"`
	}
	if err := strict(data, &raw); err != nil {
		return State{}, nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	st := State{Version: StateVersion, File: raw.File, Overlay: Overlay{Pools: map[string]PoolOverlay{}}}
	var probs []string
	bad := func(path string, err error) { probs = append(probs, path+": "+err.Error()) }
	for _, name := range sortedKeys(raw.Overlay.Pools) {
		rp := raw.Overlay.Pools[name]
		path := "overlay.pools." + name
		po := PoolOverlay{Backends: map[string]BackendOverlay{}}
		if len(rp.Policy) > 0 && string(rp.Policy) != "null" {
			var p Policy
			if err := strictCheck(rp.Policy, &p, func() error { return config.CheckPolicy(p.Policy, p.Sticky) }); err != nil {
				bad(path+".policy", err)
			} else {
				po.Policy = &p
			}
		}
		if len(rp.Canary) > 0 && string(rp.Canary) != "null" {
			var c config.Canary
			if err := strictCheck(rp.Canary, &c, func() error { return checkCanary(c) }); err != nil {
				bad(path+".canary", err)
			} else {
				po.Canary = &c
			}
		}
		for _, u := range sortedKeys(rp.Backends) {
			var o BackendOverlay
			if err := strictCheck(rp.Backends[u], &o, func() error { return checkBackendOverlay(u, o) }); err != nil {
				bad(fmt.Sprintf("%s.backends[%q]", path, u), err)
				continue
			}
			po.Backends[u] = o
		}
		st.Overlay = st.Overlay.with(name, po)
	}
	return st, probs, nil
}

func strict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func strictCheck(data []byte, v any, check func() error) error {
	if err := strict(data, v); err != nil {
		return err
	}
	return check()
}

func checkCanary(c config.Canary) error {
	if c.Backend == "" {
		return nil
	}
	if err := config.CheckCanaryPercent(c.Percent); err != nil {
		return err
	}
	if u, err := config.NormalizeURL(c.Backend); err != nil || u != c.Backend {
		return fmt.Errorf("backend %q is not a normalised backend URL", c.Backend)
	}
	return nil
}

func checkBackendOverlay(u string, o BackendOverlay) error {
	if n, err := config.NormalizeURL(u); err != nil || n != u {
		return fmt.Errorf("%q is not a normalised backend URL", u)
	}
	if o.Added != nil {
		if o.Added.URL != u {
			return fmt.Errorf("added.url %q differs from its key", o.Added.URL)
		}
		if err := o.Added.Validate(); err != nil {
			return err
		}
	}
	if w := o.Weight; w != nil && (*w < 1 || *w > config.MaxWeight) {
		return fmt.Errorf("weight: must be between 1 and %d, got %d", config.MaxWeight, *w)
	}
	if c := o.MaxInflight; c != nil && (*c < 0 || *c > config.MaxInflight) {
		return fmt.Errorf("max_inflight: must be between 0 (no cap) and %d, got %d", config.MaxInflight, *c)
	}
	return nil
}

// normRouting keeps the recorded file entries that name a backend, in
// normalised form: they are only a base to compare with.
func normRouting(r PoolRouting) PoolRouting {
	bs := r.Backends
	r.Backends = nil
	for _, b := range bs {
		u, err := config.NormalizeURL(b.URL)
		if err != nil {
			continue
		}
		b.URL = u
		if b.Protocol == "" {
			b.Protocol = "http1"
		}
		r.Backends = append(r.Backends, b)
	}
	r.Canary = normCanary(r.Canary)
	return r
}

// decodeV1 reads the format of lbd before pools, which kept the running
// backend set of the one pool with its file routing, and turns it into the
// overlay that yields that set over the recorded file.
func decodeV1(data []byte, current FileRouting) (State, []string, error) {
	type v1Backend struct {
		URL         string `json:"url"`
		Weight      int    `json:"weight"`
		MaxInflight int    `json:"max_inflight"`
		Draining    bool   `json:"draining"`
		Protocol    string `json:"protocol,omitempty"`
	}
	var v1 struct {
		Version  int           `json:"version"`
		Backends []v1Backend   `json:"backends"`
		Policy   string        `json:"policy"`
		Sticky   config.Sticky `json:"sticky"`
		Canary   config.Canary `json:"canary"`
		File     *PoolRouting  `json:"file,omitempty"`
	}
	if err := strict(data, &v1); err != nil {
		return State{}, nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	base := current.Pools[config.DefaultPool]
	if v1.File != nil {
		base = normRouting(*v1.File)
	}
	po := PoolOverlay{Backends: map[string]BackendOverlay{}}
	var probs []string
	var kept []string
	for i, b := range v1.Backends {
		spec := config.Backend{URL: b.URL, Weight: b.Weight, MaxInflight: b.MaxInflight, Protocol: b.Protocol}
		if spec.Protocol == "" {
			spec.Protocol = "http1"
		}
		if err := spec.Validate(); err != nil {
			probs = append(probs, fmt.Sprintf("backends[%d]: %v", i, err))
			continue
		}
		spec.URL, _ = config.NormalizeURL(spec.URL)
		kept = append(kept, spec.URL)
		var o BackendOverlay
		if fb, ok := base.backend(spec.URL); ok {
			if fb.Weight != spec.Weight {
				o.Weight = ptrTo(spec.Weight)
			}
			if fb.MaxInflight != spec.MaxInflight {
				o.MaxInflight = ptrTo(spec.MaxInflight)
			}
		} else {
			o.Added = &spec
		}
		if b.Draining {
			o.Draining = ptrTo(true)
		}
		po.Backends[spec.URL] = o
	}
	for _, fb := range base.Backends {
		if !slices.Contains(kept, fb.URL) {
			po.Backends[fb.URL] = BackendOverlay{Removed: true}
		}
	}
	if v1.Policy != base.Policy || v1.Sticky != base.Sticky {
		if err := config.CheckPolicy(v1.Policy, v1.Sticky); err != nil {
			probs = append(probs, "policy: "+err.Error())
		} else {
			po.Policy = &Policy{Policy: v1.Policy, Sticky: v1.Sticky}
		}
	}
	if c := normCanary(v1.Canary); c != base.Canary {
		if err := checkCanary(c); err != nil {
			probs = append(probs, "canary: "+err.Error())
		} else {
			po.Canary = &c
		}
	}
	st := State{Version: StateVersion, File: FileRouting{Pools: map[string]PoolRouting{config.DefaultPool: base}}}
	st.Overlay = Overlay{}.with(config.DefaultPool, po)
	return st, probs, nil
}
