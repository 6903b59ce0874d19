package config

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"
)

// maxLabel bounds names that become metric label values and actor names
// (pools, routes, backend names): short, and from a small alphabet, so that
// they need no escaping anywhere they are shown.
const maxLabel = 64

// label checks a name: letters, digits, '-', '_' and '.', at most maxLabel
// characters; required says whether it may be empty.
func (k *checker) label(path, name string, required bool) {
	switch {
	case name == "" && required:
		k.add(path, "must not be empty")
	case len(name) > maxLabel:
		k.add(path, "must be at most %d characters, got %d", maxLabel, len(name))
	case strings.ContainsFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
	}):
		k.add(path, "%q may contain only letters, digits, '-', '_' and '.'", name)
	}
}

// pools checks each named pool as the top level is checked, with paths
// under pools.NAME.
func (k *checker) pools(c *Config) {
	for _, name := range c.PoolNames()[1:] {
		prefix := memberPath("pools", name) + "."
		if name == DefaultPool {
			k.add(memberPath("pools", name), "the top-level backends, policy, sticky, canary, health, breaker, outlier, warmup and retries are the pool %q; set them there", DefaultPool)
			continue
		}
		k.label(memberPath("pools", name), name, true)
		p := c.Pools[name]
		k.poolRouting(prefix, p)
		k.poolSettings(prefix, p)
		k.retries(prefix, p.Retries)
		if p.MaxInflight < 0 || p.MaxInflight > MaxInflight {
			k.add(prefix+"max_inflight", "must be between 0 (no cap of its own) and %d, got %d", MaxInflight, p.MaxInflight)
		}
	}
}

// routes checks each route and that every route can match something a
// route before it does not already take: a route after a catch-all, or one
// whose match repeats an earlier one exactly, would never be used.
func (k *checker) routes(c *Config) {
	names := map[string]int{}
	catchAll := -1
	for i, r := range c.Routes {
		p := fmt.Sprintf("routes[%d]", i)
		k.label(p+".name", r.Name, false)
		if j, dup := names[r.Name]; dup && r.Name != "" {
			k.add(p+".name", "%q is already the name of routes[%d]", r.Name, j)
		} else if r.Name != "" {
			names[r.Name] = i
		}
		if r.Pool == "" {
			k.add(p+".pool", "must name a pool (%q or one of pools)", DefaultPool)
		} else if _, ok := c.PoolConfig(r.Pool); !ok {
			k.add(p+".pool", "%q is not a pool; pools are %s", r.Pool, strings.Join(c.PoolNames(), ", "))
		}
		k.routeMatch(p+".match.", r.Match)
		if r.StripPrefix && r.Match.PathPrefix == "" {
			k.add(p+".strip_prefix", "needs match.path_prefix: there is no prefix to strip")
		}
		switch {
		case catchAll >= 0:
			k.add(p, "is never used: routes[%d] before it matches every request", catchAll)
		case r.Match.IsCatchAll():
			catchAll = i
		default:
			for j := range i {
				if reflect.DeepEqual(c.Routes[j].Match, r.Match) {
					k.add(p, "is never used: routes[%d] before it has the same match", j)
					break
				}
			}
		}
	}
}

func (k *checker) routeMatch(prefix string, m RouteMatch) {
	if h := m.Host; h != "" {
		name := strings.TrimPrefix(h, "*.")
		if strings.Contains(name, "*") || name == "" || strings.ContainsFunc(name, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_')
		}) || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") {
			k.add(prefix+"host", "%q is not a host name or a wildcard such as \"*.example.com\" (no port, no other '*')", h)
		}
	}
	if pp := m.PathPrefix; pp != "" && (!strings.HasPrefix(pp, "/") || strings.ContainsFunc(pp, func(r rune) bool { return r <= ' ' || r == 0x7f })) {
		k.add(prefix+"path_prefix", "must start with \"/\" and contain no spaces, got %q", pp)
	}
	for name := range m.Header {
		if name == "" || strings.ContainsFunc(name, func(r rune) bool { return !isTokenChar(r) }) {
			k.add(memberPath(prefix+"header", name), "%q is not a valid header name", name)
		}
	}
	for i, meth := range m.Method {
		if meth == "" || meth != strings.ToUpper(meth) || strings.ContainsFunc(meth, func(r rune) bool { return !isTokenChar(r) }) {
			k.add(fmt.Sprintf("%smethod[%d]", prefix, i), "%q is not a method; write it in capitals, as %q", meth, http.MethodGet)
		}
	}
}
