package proxy

import (
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/scheduler"
)

// RejectNoRoute is the X-Lbd-Reject reason of a request no route matches.
const RejectNoRoute = "no-route"

// Pool is what the data plane knows of one pool: the scheduler whose
// picker it picks from, and the pool's retry rules and cap, which a reload
// changes in place (SetSettings) so that the in-flight count of a pool
// outlives any change of its settings. The routing-config owner makes one
// per pool and keeps it for the pool's life.
type Pool struct {
	name     string
	none     *upstream // metrics labels of the pool's requests lbd answered itself
	sched    PickerSource
	settings atomic.Pointer[PoolSettings]
	inflight atomic.Int64
}

// PoolSettings are a pool's data-plane settings.
type PoolSettings struct {
	Retries     RetryOptions
	MaxInflight int64 // 0: no cap of the pool's own
}

// NewPool returns the data plane's view of a pool.
func NewPool(name string, sched PickerSource, s PoolSettings) *Pool {
	p := &Pool{name: name, sched: sched}
	p.SetSettings(s)
	return p
}

// Name returns the pool's name.
func (p *Pool) Name() string { return p.name }

// SetSettings replaces the pool's settings; requests that started keep
// the ones they started with.
func (p *Pool) SetSettings(s PoolSettings) { p.settings.Store(&s) }

// Settings returns the pool's current settings.
func (p *Pool) Settings() PoolSettings { return *p.settings.Load() }

// Inflight returns the requests in flight to the pool.
func (p *Pool) Inflight() int64 { return p.inflight.Load() }

func (p *Pool) picker() *scheduler.Picker { return p.sched.Picker() }

// enter counts a request in against the pool's cap; a false result needs no leave.
func (p *Pool) enter(s *PoolSettings) bool {
	n := p.inflight.Add(1)
	if s.MaxInflight > 0 && n > s.MaxInflight {
		p.inflight.Add(-1)
		return false
	}
	return true
}

func (p *Pool) leave() { p.inflight.Add(-1) }

// Routes is an immutable routing table: the routes in order, compiled so
// that matching a request allocates nothing, and each with its pool. The
// owner builds a new one on every change of the routes or of the set of
// pools, and the data plane swaps it in (Handler.SetRoutes).
type Routes struct {
	routes []route
	// fallback takes every request when there are no routes: the pool
	// "default" (a config written before routes existed).
	fallback *route
}

type route struct {
	name        string
	pool        *Pool
	host        string // lower case; "" matches any
	hostSuffix  bool   // host is ".example.com": any name under it
	pathPrefix  string
	headers     []headerMatch
	methods     []string
	stripPrefix bool
	requests    prometheus.Counter
	spanNames   *spanNames // "GET <route name or pool>", by method (tracing.go)
}

type headerMatch struct{ name, value string } // name in canonical form

// NewRoutes compiles the configured routes over pools (by name; every
// route's pool must be there, as config validation ensures). With no
// routes, every request goes to the pool "default".
func (h *Handler) NewRoutes(rs []config.Route, pools map[string]*Pool) *Routes {
	for _, p := range pools {
		if p.none == nil { // set before the table is published, read-only after
			p.none = h.metrics.noneOf(p.name)
		}
	}
	t := &Routes{}
	if p := pools[config.DefaultPool]; p != nil && len(rs) == 0 {
		t.fallback = &route{name: "", pool: p, spanNames: newSpanNames(p.name)}
	}
	for i, r := range rs {
		c := route{
			name: r.RouteName(i), pool: pools[r.Pool], pathPrefix: r.Match.PathPrefix,
			methods: r.Match.Method, stripPrefix: r.StripPrefix,
		}
		if host := strings.ToLower(r.Match.Host); strings.HasPrefix(host, "*.") {
			c.host, c.hostSuffix = host[1:], true
		} else {
			c.host = host
		}
		for name, value := range r.Match.Header {
			c.headers = append(c.headers, headerMatch{http.CanonicalHeaderKey(name), value})
		}
		c.requests = h.metrics.routeRequests.WithLabelValues(c.name)
		target := r.Name
		if target == "" {
			target = r.Pool
		}
		c.spanNames = newSpanNames(target)
		t.routes = append(t.routes, c)
	}
	return t
}

// match returns the first route that accepts r, or nil; with no routes
// the fallback pool's pseudo-route.
func (t *Routes) match(r *http.Request) *route {
	if t.fallback != nil {
		return t.fallback
	}
	host := hostOnly(r.Host)
	for i := range t.routes {
		if c := &t.routes[i]; c.matches(r, host) {
			return c
		}
	}
	return nil
}

func (c *route) matches(r *http.Request, host string) bool {
	switch {
	case c.host == "":
	case c.hostSuffix:
		if len(host) <= len(c.host) || !strings.EqualFold(host[len(host)-len(c.host):], c.host) {
			return false
		}
	case !strings.EqualFold(host, c.host):
		return false
	}
	if !strings.HasPrefix(r.URL.Path, c.pathPrefix) {
		return false
	}
	for _, hm := range c.headers {
		if v := r.Header[hm.name]; len(v) == 0 || v[0] != hm.value {
			return false
		}
	}
	if len(c.methods) == 0 {
		return true
	}
	for _, m := range c.methods {
		if r.Method == m {
			return true
		}
	}
	return false
}

// hostOnly strips the port from a Host header, keeping an IPv6 literal's
// brackets off: "[::1]:80" is "::1", "example.com:8080" is "example.com".
func hostOnly(h string) string {
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i > 0 {
			return h[1:i]
		}
		return h
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		return h[:i]
	}
	return h
}

// strip removes the route's prefix from the path sent upstream, keeping it
// absolute: "/api/v1" with prefix "/api/" becomes "/v1", "/api" with
// prefix "/api" becomes "/".
func (c *route) strip(path, rawPath string) (string, string) {
	p := stripPrefix(path, c.pathPrefix)
	if rawPath == "" {
		return p, ""
	}
	if !strings.HasPrefix(rawPath, c.pathPrefix) {
		return p, "" // the escaped form differs in the prefix: let net/url escape p again
	}
	return p, stripPrefix(rawPath, c.pathPrefix)
}

// stripPrefix cuts prefix (which path has) off path and keeps the rest
// absolute, without allocating when the prefix ends in "/".
func stripPrefix(path, prefix string) string {
	if strings.HasSuffix(prefix, "/") {
		return path[len(prefix)-1:]
	}
	switch rest := path[len(prefix):]; {
	case rest == "":
		return "/"
	case rest[0] == '/':
		return rest
	default:
		return "/" + rest
	}
}
