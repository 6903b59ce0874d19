package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
)

// MaxWeight is the largest backend weight; weights are 1..MaxWeight.
const MaxWeight = 1000

// MaxInflight is the largest concurrency cap: a backend's, a pool's and
// admission.max_inflight are at most MaxInflight (a backend's and a pool's
// 0 for none), in the config file, in every admin call and in the state
// file alike.
const MaxInflight = 1_000_000

// Bounds of the input limits (admission.max_connections, max_header_count,
// max_uri_bytes): far above any sensible setting, low enough that a typo
// cannot switch a limit off in effect.
const (
	MaxConnections = 10_000_000
	MaxHeaderCount = 10_000
	MaxURIBytes    = 1 << 20
)

// DefaultBackend is what a backend entry means before its keys are applied:
// the original config.json often omits weight and never names a protocol.
func DefaultBackend() Backend { return Backend{Weight: 1, Protocol: "http1"} }

// Load reads and parses the config file at path. A *ValidationError it
// returns carries the file name, so each line it prints names the file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err) // the *PathError names the file
	}
	c, err := Parse(data)
	if err != nil {
		if ve, ok := errors.AsType[*ValidationError](err); ok {
			ve.File = path
			return nil, ve
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Check loads the file at path and returns every problem in it (the file
// cannot be read, JSON syntax, unknown keys, wrong types, or invalid
// values), or nil when the file is a valid config. It backs `lbd -check`;
// the problems do not repeat the file name.
func Check(path string) []Problem {
	_, err := Load(path)
	if err == nil {
		return nil
	}
	if ve, ok := errors.AsType[*ValidationError](err); ok {
		return ve.Problems
	}
	return []Problem{{Message: err.Error()}}
}

// Parse turns the bytes of a config file into a validated Config.
//
// The file is laid over Default(): an omitted key keeps its default, a
// backend entry starts from DefaultBackend, and a JSON null keeps the default
// too. Decoding is strict and walks the Config type through its json tags
// itself, because encoding/json's DisallowUnknownFields names neither the
// path nor more than one problem: every unknown key and every wrongly typed
// value is reported with its JSON path (backends[1].wieght). Keys match the
// tags exactly, case included. A key given twice is applied twice, in order,
// so the last one wins, as with encoding/json.
//
// Every error is a *ValidationError listing every problem of the file in
// one go: decoding problems (unknown keys, wrong types) and validation
// problems (a negative weight, a bad URL) together, so one run of
// `lbd -check` shows all there is to fix. A member that failed to decode
// keeps its default, and validation problems at or under its path are left
// out, since they would be consequences of the decoding problem rather than
// causes. A file that is not a JSON object at all reports that alone. On
// success the backend URLs and canary backends are rewritten in
// NormalizeURL's form, so every package names a backend the same way,
// and discovery names in NormalizeDNSName's.
func Parse(data []byte) (*Config, error) {
	c := Default()
	probs := decode(data, c)
	for _, p := range probs {
		if p.Path == "" {
			return nil, &ValidationError{Problems: probs}
		}
	}
	if err := c.Validate(); err != nil {
		ve, _ := errors.AsType[*ValidationError](err)
		for _, vp := range ve.Problems {
			if !underAny(vp.Path, probs) {
				probs = append(probs, vp)
			}
		}
	}
	if len(probs) > 0 {
		return nil, &ValidationError{Problems: probs}
	}
	c.normalize()
	return c, nil
}

// underAny reports whether path is one of the decode problems' paths or
// lies under one (a.b under a, a[1].c under a[1]).
func underAny(path string, probs []Problem) bool {
	for _, p := range probs {
		if path == p.Path || strings.HasPrefix(path, p.Path+".") || strings.HasPrefix(path, p.Path+"[") {
			return true
		}
	}
	return false
}

// normalize rewrites every backend URL and canary backend of a valid config
// in NormalizeURL's form.
func (c *Config) normalize() {
	normBackends(c.Backends)
	c.Canary.Backend = normCanary(c.Canary.Backend)
	normDiscovery(c.Discovery)
	for name, p := range c.Pools {
		p.Backends, p.Discovery = slices.Clone(p.Backends), slices.Clone(p.Discovery)
		normBackends(p.Backends)
		normDiscovery(p.Discovery)
		p.Canary.Backend = normCanary(p.Canary.Backend)
		c.Pools[name] = p
	}
}

func normDiscovery(ds []Discovery) {
	for i := range ds {
		ds[i].DNS, _ = NormalizeDNSName(ds[i].DNS)
	}
}

func normBackends(bs []Backend) {
	for i := range bs {
		bs[i].URL, _ = NormalizeURL(bs[i].URL)
	}
}

func normCanary(u string) string {
	if u == "" {
		return ""
	}
	n, _ := NormalizeURL(u)
	return n
}

// NormalizeURL returns the identity of a backend: lowercased scheme and host
// plus an explicit port (80 for http, 443 for https), as "http://host:port"
// or "https://[v6addr]:port". Only http and https with a host are accepted; a
// path other than "/", a query, a fragment or user info is an error rather
// than silently dropped, because lbd forwards the client's path unchanged
// and two spellings of one server must never become two backends.
func NormalizeURL(raw string) (string, error) {
	switch {
	case raw == "":
		return "", errors.New("URL is empty; write it as http://host:port")
	case strings.TrimSpace(raw) != raw:
		return "", fmt.Errorf("%q has leading or trailing spaces", raw)
	case !strings.Contains(raw, "://"):
		return "", fmt.Errorf("%q must start with http:// or https://", raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("%q is not a valid URL: %v", raw, err)
	}
	switch {
	case u.Scheme == "":
		return "", fmt.Errorf("%q must start with http:// or https://", raw)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("%q has scheme %q; only http and https are supported", raw, u.Scheme)
	case u.User != nil:
		return "", fmt.Errorf("%q contains user info; backend URLs must not carry credentials", raw)
	case u.Opaque != "" || (u.Path != "" && u.Path != "/"):
		return "", fmt.Errorf("%q has a path; give only scheme, host and port", raw)
	case u.RawQuery != "" || u.ForceQuery:
		return "", fmt.Errorf("%q has a query; give only scheme, host and port", raw)
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return "", fmt.Errorf("%q has a fragment; give only scheme, host and port", raw)
	}
	host, err := normalHost(u)
	if err != nil {
		return "", fmt.Errorf("%q %v", raw, err)
	}
	port := u.Port()
	if port == "" {
		if strings.HasSuffix(u.Host, ":") {
			return "", fmt.Errorf("%q has an empty port", raw)
		}
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("%q has port %s; ports are 1 to 65535", raw, port)
	} else {
		port = strconv.Itoa(n) // drops leading zeros
	}
	return u.Scheme + "://" + net.JoinHostPort(host, port), nil
}

// normalHost returns u's host lowercased, or the canonical text of an IP.
func normalHost(u *url.URL) (string, error) {
	h := u.Hostname()
	if h == "" {
		return "", errors.New("has no host")
	}
	if strings.HasPrefix(u.Host, "[") {
		a, err := netip.ParseAddr(h)
		switch {
		case err != nil || !a.Is6():
			return "", fmt.Errorf("has %q in brackets, which is not an IPv6 address", h)
		case a.Zone() != "":
			return "", errors.New("has an IPv6 zone; zones are not supported")
		}
		return a.String(), nil
	}
	if strings.Contains(h, ":") {
		return "", errors.New("has an IPv6 address without brackets; write it as http://[::1]:8080")
	}
	for _, r := range h {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_'
		if !ok {
			return "", fmt.Errorf("has an invalid host %q (international names go in their xn-- form)", h)
		}
	}
	return strings.ToLower(h), nil
}

// Clone returns a deep copy: changing it never changes c.
func (c *Config) Clone() *Config {
	out := *c
	out.Backends = slices.Clone(c.Backends)
	out.Discovery = slices.Clone(c.Discovery)
	out.Admission.TrustedProxies = slices.Clone(c.Admission.TrustedProxies)
	if c.Pools != nil {
		out.Pools = make(map[string]Pool, len(c.Pools))
		for name, p := range c.Pools {
			p.Backends, p.Discovery = slices.Clone(p.Backends), slices.Clone(p.Discovery)
			out.Pools[name] = p
		}
	}
	if c.Tracing != nil {
		t := *c.Tracing
		t.Headers = maps.Clone(t.Headers)
		if t.SampleRatio != nil {
			r := *t.SampleRatio
			t.SampleRatio = &r
		}
		out.Tracing = &t
	}
	out.Routes = slices.Clone(c.Routes)
	for i, r := range out.Routes {
		out.Routes[i].Match.Header = maps.Clone(r.Match.Header)
		out.Routes[i].Match.Method = slices.Clone(r.Match.Method)
	}
	if c.Fleet != nil {
		f := *c.Fleet
		f.Etcd.Endpoints = slices.Clone(f.Etcd.Endpoints)
		out.Fleet = &f
	}
	return &out
}

// Redacted returns a copy safe to show at /debug/config. The values of
// tracing.headers are secrets (collector API keys) and are masked, their
// names kept; admin.token_file is a path and is kept. Parse rejects URLs with
// user info; Redacted still masks user info in URLs because a Config built in
// code (admin, state restore) may not have been through Parse.
func (c *Config) Redacted() *Config {
	out := c.Clone()
	if out.Tracing != nil {
		for name := range out.Tracing.Headers {
			out.Tracing.Headers[name] = Redacted
		}
	}
	redactBackends(out.Backends)
	out.Canary.Backend = redactURL(out.Canary.Backend)
	for name, p := range out.Pools {
		redactBackends(p.Backends)
		p.Canary.Backend = redactURL(p.Canary.Backend)
		out.Pools[name] = p
	}
	if out.Fleet != nil {
		for i, ep := range out.Fleet.Etcd.Endpoints {
			out.Fleet.Etcd.Endpoints[i] = redactURL(ep)
		}
	}
	return out
}

// Redacted stands for a secret value in what lbd shows of its config.
const Redacted = "(redacted)"

func redactBackends(bs []Backend) {
	for i := range bs {
		bs[i].URL = redactURL(bs[i].URL)
	}
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if strings.Contains(s, "@") {
			return "(unparsable URL redacted)"
		}
		return s
	}
	if u.User == nil {
		return s
	}
	u.User = url.User("redacted")
	return u.String()
}
