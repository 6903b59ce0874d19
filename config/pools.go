package config

import (
	"maps"
	"slices"
	"strconv"
)

// DefaultPool is the name of the pool that the top-level backends, policy,
// sticky, canary, health, breaker, outlier, warmup and retries describe. A
// config without "pools" has this one pool only, so every config written
// before pools existed means what it meant.
const DefaultPool = "default"

// Pool is one named pool of backends: its own scheduler (policy, sticky,
// canary) and its own health checks, breakers, outlier detection, warm-up
// and retries. Every setting a pool's entry leaves out is the top-level one
// (poolTemplate), so a pool that differs only in its health path says only that.
type Pool struct {
	Backends []Backend `json:"backends"`
	// Discovery are DNS sources of more backends (discovery.go).
	Discovery []Discovery `json:"discovery"`
	Policy    string      `json:"policy"`
	Sticky    Sticky      `json:"sticky"`
	Canary    Canary      `json:"canary"`
	Health    Health      `json:"health"`
	Breaker   Breaker     `json:"breaker"`
	Outlier   Outlier     `json:"outlier"`
	Warmup    Warmup      `json:"warmup"`
	Retries   Retries     `json:"retries"`
	// MaxInflight caps the requests in flight to this pool (0: no cap of
	// its own; admission.max_inflight still caps the whole process). The
	// pool "default" has none.
	MaxInflight int `json:"max_inflight"`
}

// Route sends the requests its Match accepts to Pool. Routes are tried in
// order and the first match wins; a request no route matches is answered
// 404 with X-Lbd-Reject: no-route. Without any route every request goes to
// the pool "default".
type Route struct {
	// Name labels the route in metrics and logs; the default is its index ("0", "1", ...).
	Name  string     `json:"name,omitempty"`
	Match RouteMatch `json:"match"`
	Pool  string     `json:"pool"`
	// StripPrefix removes Match.PathPrefix from the path sent upstream
	// ("/api/v1/users" with prefix "/api/" goes up as "/v1/users").
	StripPrefix bool `json:"strip_prefix"`
}

// RouteMatch is what a request must have for its route to match; every
// field given must match, and an empty RouteMatch matches every request.
type RouteMatch struct {
	// Host is the request's host without its port, compared without case:
	// "api.example.com", or "*.example.com" for any name under example.com
	// (not example.com itself).
	Host string `json:"host,omitempty"`
	// PathPrefix is a prefix of the request path, such as "/api/".
	PathPrefix string `json:"path_prefix,omitempty"`
	// Header maps header names to the exact value each must have.
	Header map[string]string `json:"header,omitempty"`
	// Method lists the methods accepted (any one of them).
	Method []string `json:"method,omitempty"`
}

// IsCatchAll reports a match that accepts every request.
func (m RouteMatch) IsCatchAll() bool {
	return m.Host == "" && m.PathPrefix == "" && len(m.Header) == 0 && len(m.Method) == 0
}

// poolTemplate is what a pool entry starts from before its own keys apply:
// the top-level settings, without backends, discovery or a canary (those
// name servers of one pool and never carry over).
func (c *Config) poolTemplate() Pool {
	p := c.DefaultPoolConfig()
	p.Backends, p.Discovery, p.Canary = nil, nil, Canary{}
	return p
}

// DefaultPoolConfig returns the top-level settings as the pool "default".
func (c *Config) DefaultPoolConfig() Pool {
	return Pool{
		Backends: c.Backends, Discovery: c.Discovery, Policy: c.Policy, Sticky: c.Sticky, Canary: c.Canary,
		Health: c.Health, Breaker: c.Breaker, Outlier: c.Outlier, Warmup: c.Warmup, Retries: c.Retries,
	}
}

// PoolNames returns "default" first, then the other pools by name.
func (c *Config) PoolNames() []string {
	return append([]string{DefaultPool}, slices.Sorted(maps.Keys(c.Pools))...)
}

// PoolConfig returns the named pool's settings.
func (c *Config) PoolConfig(name string) (Pool, bool) {
	if name == DefaultPool {
		return c.DefaultPoolConfig(), true
	}
	p, ok := c.Pools[name]
	return p, ok
}

// RouteName is route i's name in metrics: its configured name or its index.
func (r Route) RouteName(i int) string {
	if r.Name != "" {
		return r.Name
	}
	return strconv.Itoa(i)
}
