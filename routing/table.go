// Package routing is lbd's routing configuration as plain data: the pools,
// the backends each holds (with weight, cap, drain and where each came
// from), the policies, canaries and routes. Three sources meet in it: the
// config file, the members DNS discovery found, and the changes made
// through the admin API (an Overlay, which the state file or the fleet's
// etcd prefix keeps). Effective combines them into the Table lbd runs;
// Apply checks and records an admin change; Rebase settles a config file
// edit against earlier admin changes as a three-way merge does; Diff says
// what a new Table changes, which is both the reload plan an operator sees
// and the list of commands the routing-config owner sends to the actors.
//
// The package has no goroutines and no state of its own: the routing-config
// owner (package daemon) is its only caller that holds a Table, and it
// serialises every change through its mailbox.
package routing

import (
	"slices"

	"github.com/lbd/lbd/config"
)

// Sources of a backend, as /admin/backends shows them.
const (
	SourceConfig = "config" // listed in the config file
	SourceAdmin  = "admin"  // added through the admin API
)

// Discovery reports whether source names a discovery source, which owns
// the set of its members: they come and go with its answers only.
func Discovery(source string) bool {
	return source != SourceConfig && source != SourceAdmin && source != ""
}

// Backend is one backend of one pool as lbd runs it.
type Backend struct {
	URL         string `json:"url"` // normalised: the backend's identity within its pool
	Name        string `json:"name,omitempty"`
	Weight      int    `json:"weight"`
	MaxInflight int    `json:"max_inflight"`
	Protocol    string `json:"protocol"`
	CAFile      string `json:"ca_file,omitempty"`
	ServerName  string `json:"server_name,omitempty"`
	Draining    bool   `json:"draining"`
	// Source says who put the backend in the pool: "config", "admin", or
	// a discovery source ("dns:srv:_http._tcp.api.service.consul").
	Source string `json:"source"`
}

// Identity reports whether two entries for one URL can be served by the
// same backend actor and transport: a different protocol or TLS trust
// needs a new one (drain the old, start the new), anything else is a
// command to the running actor.
func (b Backend) Identity() [3]string { return [3]string{b.Protocol, b.CAFile, b.ServerName} }

// Pool is one pool as lbd runs it: its backends, policy and canary after
// the admin changes, and the file's settings for everything else.
type Pool struct {
	Name     string        `json:"name"`
	Backends []Backend     `json:"backends"`
	Policy   string        `json:"policy"`
	Sticky   config.Sticky `json:"sticky"`
	Canary   config.Canary `json:"canary"`
	// Settings is the pool's section of the config file: health, breaker,
	// outlier, warmup, retries and max_inflight are read from it (its
	// Backends, Policy, Sticky and Canary are the file's, before the admin
	// changes: use the fields above).
	Settings config.Pool `json:"-"`
}

// Backend returns the pool's backend with the given normalised URL.
func (p *Pool) Backend(url string) (Backend, bool) {
	i := slices.IndexFunc(p.Backends, func(b Backend) bool { return b.URL == url })
	if i < 0 {
		return Backend{}, false
	}
	return p.Backends[i], true
}

// Table is the whole routing configuration lbd runs. The owner never
// changes a Table it has published; a change builds a new one.
type Table struct {
	Pools  []Pool         `json:"pools"` // "default" first, then by name
	Routes []config.Route `json:"routes"`
}

// Pool returns the named pool.
func (t *Table) Pool(name string) (*Pool, bool) {
	for i := range t.Pools {
		if t.Pools[i].Name == name {
			return &t.Pools[i], true
		}
	}
	return nil, false
}

// Discovered is what discovery found: by pool, then by source name, the
// members of that source (URLs normalised).
type Discovered map[string]map[string][]config.Backend

// Effective lays the discovered members and the overlay over the config
// file. A pool's backends are, in order: the file's, then each discovery
// source's members (sources by name) that the file does not list, then the
// ones the admin API added; the overlay then removes, re-weights, caps and
// drains. A canary whose backend is not in the pool is no canary.
func Effective(file *config.Config, ov Overlay, disc Discovered) *Table {
	t := &Table{Routes: file.Routes}
	for _, name := range file.PoolNames() {
		fp, _ := file.PoolConfig(name)
		t.Pools = append(t.Pools, effectivePool(name, fp, ov.Pools[name], disc[name]))
	}
	return t
}

func effectivePool(name string, fp config.Pool, po PoolOverlay, disc map[string][]config.Backend) Pool {
	p := Pool{Name: name, Policy: fp.Policy, Sticky: fp.Sticky, Canary: fp.Canary, Settings: fp}
	seen := map[string]bool{}
	add := func(b config.Backend, source string) {
		if seen[b.URL] {
			return
		}
		seen[b.URL] = true
		o := po.Backends[b.URL]
		if o.Removed && !Discovery(source) {
			return // a discovered member cannot be removed by hand (Apply refuses it)
		}
		p.Backends = append(p.Backends, o.apply(fromConfig(b, source)))
	}
	for _, b := range fp.Backends {
		add(b, SourceConfig)
	}
	for _, src := range sortedKeys(disc) {
		for _, b := range disc[src] {
			add(b, src)
		}
	}
	for _, u := range sortedKeys(po.Backends) {
		if a := po.Backends[u].Added; a != nil {
			add(*a, SourceAdmin)
		}
	}
	if po.Policy != nil {
		p.Policy, p.Sticky = po.Policy.Policy, po.Policy.Sticky
	}
	if po.Canary != nil {
		p.Canary = *po.Canary
	}
	if _, ok := p.Backend(p.Canary.Backend); !ok || p.Canary.Percent <= 0 {
		p.Canary = config.Canary{}
	}
	return p
}

func fromConfig(b config.Backend, source string) Backend {
	protocol := b.Protocol
	if protocol == "" {
		protocol = "http1"
	}
	return Backend{URL: b.URL, Name: b.Name, Weight: max(b.Weight, 1), MaxInflight: b.MaxInflight, Protocol: protocol,
		CAFile: b.CAFile, ServerName: b.ServerName, Source: source}
}

// Config returns the pool as a config section (with its effective
// backends, policy and canary), for validation and for /debug/config.
func (p *Pool) Config() config.Pool {
	c := p.Settings
	c.Backends = make([]config.Backend, len(p.Backends))
	for i, b := range p.Backends {
		c.Backends[i] = config.Backend{URL: b.URL, Name: b.Name, Weight: b.Weight, MaxInflight: b.MaxInflight,
			Protocol: b.Protocol, CAFile: b.CAFile, ServerName: b.ServerName}
	}
	c.Policy, c.Sticky, c.Canary = p.Policy, p.Sticky, p.Canary
	return c
}

// Apply returns file with the table's pools in it: the effective
// configuration /debug/config shows.
func (t *Table) Apply(file *config.Config) *config.Config {
	out := file.Clone()
	for i := range t.Pools {
		p := t.Pools[i].Config()
		if t.Pools[i].Name == config.DefaultPool {
			out.Backends, out.Policy, out.Sticky, out.Canary = p.Backends, p.Policy, p.Sticky, p.Canary
			continue
		}
		out.Pools[t.Pools[i].Name] = p
	}
	return out
}
