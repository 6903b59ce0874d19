package config

// Validation is kept apart from defaults (Default) and decoding (Parse): it
// only judges a finished Config, and it reports every problem at once with
// its JSON path and a sentence the operator can act on, so that one run of
// `lbd -check` fixes a file instead of one round trip per mistake.

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a config. Path is the JSON path of the
// value (backends[1].weight), empty when the problem is the whole file.
type Problem struct {
	Path    string
	Message string
}

// String formats p as "path: message", or the message alone without a path.
func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// ValidationError lists every problem found in a config. File, set by Load,
// prefixes each line so that an operator sees which file is wrong.
type ValidationError struct {
	File     string
	Problems []Problem
}

// Error prints one problem per line: "[file: ]path: message".
func (e *ValidationError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		if e.File != "" {
			b.WriteString(e.File + ": ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// checker collects problems; its helpers word the common rules alike.
type checker struct{ problems []Problem }

func (k *checker) add(path, format string, args ...any) {
	k.problems = append(k.problems, Problem{path, fmt.Sprintf(format, args...)})
}

func (k *checker) err() error {
	if len(k.problems) == 0 {
		return nil
	}
	return &ValidationError{Problems: k.problems}
}

func (k *checker) intIn(path string, v, lo, hi int) {
	if v < lo || v > hi {
		k.add(path, "must be between %d and %d, got %d", lo, hi, v)
	}
}

func (k *checker) atLeast(path string, v, lo int) {
	if v < lo {
		k.add(path, "must be at least %d, got %d", lo, v)
	}
}

// floatIn checks lo <= v <= hi, written so that NaN fails too.
func (k *checker) floatIn(path string, v, lo, hi float64) {
	if !(v >= lo && v <= hi) {
		k.add(path, "must be between %g and %g, got %g", lo, hi, v)
	}
}

func (k *checker) positive(path string, d Duration) {
	if d <= 0 {
		k.add(path, "must be a positive duration such as \"1s\", got %s", d.D())
	}
}

// notNegative checks a duration for which 0 has a meaning, said in zero.
func (k *checker) notNegative(path string, d Duration, zero string) {
	if d < 0 {
		k.add(path, "must not be negative (0 means %s), got %s", zero, d.D())
	}
}

func (k *checker) oneOf(path, v string, allowed ...string) {
	if !slices.Contains(allowed, v) {
		k.add(path, "must be one of %s, got %q", strings.Join(allowed, ", "), v)
	}
}

func (k *checker) listen(path, addr string) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		k.add(path, "%q is not host:port, as in \":3030\" or \"127.0.0.1:3031\"", addr)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		k.add(path, "%q has port %q; ports are numbers from 0 to 65535", addr, port)
	}
}

// Validate reports every problem in c as a *ValidationError, or returns nil.
// Rules that depend on another field (canary.backend among the backends,
// aimd.max_limit under admission.max_inflight) are checked here too.
func (c *Config) Validate() error {
	var k checker
	k.listen("listen", c.Listen)
	k.listen("admin.listen", c.Admin.Listen)
	if c.TLS.CertFile == "" && c.TLS.KeyFile != "" {
		k.add("tls.cert_file", "must be set when tls.key_file is set (set both to serve HTTPS, or neither)")
	}
	if c.TLS.CertFile != "" && c.TLS.KeyFile == "" {
		k.add("tls.key_file", "must be set when tls.cert_file is set (set both to serve HTTPS, or neither)")
	}
	if c.H2C && c.TLS.CertFile != "" {
		k.add("h2c", "cleartext HTTP/2 cannot be combined with tls; HTTPS already offers h2 through ALPN")
	}
	k.notNegative("websocket.drain_timeout", c.WebSocket.DrainTimeout, "close open WebSockets at once")

	def := c.DefaultPoolConfig()
	k.poolRouting("", def)
	k.poolSettings("", def)

	k.admission(c.Admission)
	k.aimd(c.AIMD, c.Admission.MaxInflight)

	k.retries("", c.Retries)

	t := c.Timeouts
	k.positive("timeouts.dial", t.Dial)
	k.notNegative("timeouts.response_header", t.ResponseHeader, "no limit")
	k.notNegative("timeouts.idle_conn", t.IdleConn, "no limit")
	k.notNegative("timeouts.client_read_header", t.ClientReadHeader, "no limit")
	k.notNegative("timeouts.client_idle", t.ClientIdle, "no limit")
	k.notNegative("timeouts.client_stall", t.ClientStall, "never cut a stalled client")
	if t.MaxHeaderBytes < 0 {
		k.add("timeouts.max_header_bytes", "must not be negative (0 means Go's default of 1 MB), got %d", t.MaxHeaderBytes)
	}

	k.oneOf("access_log.mode", c.AccessLog.Mode, "on", "off", "sampled")
	k.floatIn("access_log.sample_rate", c.AccessLog.SampleRate, 0, 1)
	if c.MetricsDump.Dir != "" {
		k.positive("metrics_dump.interval", c.MetricsDump.Interval)
		k.atLeast("metrics_dump.keep", c.MetricsDump.Keep, 1)
	}
	k.notNegative("shutdown_grace", c.ShutdownGrace, "stop without waiting")
	k.tracing(c.Tracing)
	k.pools(c)
	k.routes(c)
	if c.Fleet != nil {
		k.fleet(c.Fleet)
		if c.StateFile != "" {
			k.add("state_file", "with fleet, state_file is not used; remove it")
		}
	}
	return k.err()
}

// poolRouting checks a pool's backends, policy, sticky and canary; prefix
// is "" for the top level (the pool "default") or "pools.NAME.".
func (k *checker) poolRouting(prefix string, p Pool) {
	seen := map[string]int{}
	for i, b := range p.Backends {
		path := fmt.Sprintf("%sbackends[%d]", prefix, i)
		u := k.backend(path+".", b)
		if j, dup := seen[u]; dup && u != "" {
			k.add(path+".url", "%q is the same backend as %sbackends[%d] (both are %s)", b.URL, prefix, j, u)
		} else if u != "" {
			seen[u] = i
		}
	}
	k.discoveries(prefix+"discovery", p.Discovery)

	k.oneOf(prefix+"policy", p.Policy, Policies...)
	k.stickyKey(prefix+"sticky.key", p.Sticky.Key)
	k.floatIn(prefix+"canary.percent", p.Canary.Percent, 0, 100)
	if p.Canary.Backend != "" {
		u, err := NormalizeURL(p.Canary.Backend)
		if err != nil {
			k.add(prefix+"canary.backend", "%v", err)
		} else if _, ok := seen[u]; !ok && p.Canary.Percent > 0 && len(p.Discovery) == 0 {
			// With discovery the canary may be a discovered member; it is
			// no canary while it is not in the pool (routing.Effective).
			k.add(prefix+"canary.backend", "%q is not one of the backends; add it to backends too", p.Canary.Backend)
		}
	} else if p.Canary.Percent > 0 {
		k.add(prefix+"canary.backend", "must name one of the backends when canary.percent is above 0")
	}
}

// poolSettings checks a pool's health, breaker, outlier and warmup sections.
func (k *checker) poolSettings(prefix string, p Pool) {
	h := p.Health
	if !strings.HasPrefix(h.Path, "/") || strings.ContainsFunc(h.Path, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		k.add(prefix+"health.path", "must be a request path starting with \"/\" and without spaces, got %q", h.Path)
	}
	k.positive(prefix+"health.interval", h.Interval)
	k.positive(prefix+"health.timeout", h.Timeout)
	k.floatIn(prefix+"health.jitter", h.Jitter, 0, 1)
	k.atLeast(prefix+"health.rise", h.Rise, 1)
	k.atLeast(prefix+"health.fall", h.Fall, 1)
	k.intIn(prefix+"health.expected_status", h.ExpectedStatus, 100, 599)

	b := p.Breaker
	k.atLeast(prefix+"breaker.failure_threshold", b.FailureThreshold, 1)
	k.positive(prefix+"breaker.open_for", b.OpenFor)
	k.atLeast(prefix+"breaker.half_open_probes", b.HalfOpenProbes, 1)
	if b.MaxOpenFor < b.OpenFor {
		k.add(prefix+"breaker.max_open_for", "must be at least %sbreaker.open_for (%s), got %s", prefix, b.OpenFor.D(), b.MaxOpenFor.D())
	}

	o := p.Outlier
	k.atLeast(prefix+"outlier.consecutive_5xx", o.Consecutive5xx, 1)
	k.atLeast(prefix+"outlier.consecutive_gateway_failure", o.ConsecutiveGatewayErr, 1)
	k.positive(prefix+"outlier.interval", o.Interval)
	k.positive(prefix+"outlier.base_ejection", o.BaseEjection)
	if o.MaxEjection < o.BaseEjection {
		k.add(prefix+"outlier.max_ejection", "must be at least %soutlier.base_ejection (%s), got %s", prefix, o.BaseEjection.D(), o.MaxEjection.D())
	}
	k.intIn(prefix+"outlier.max_ejection_percent", o.MaxEjectionPercent, 0, 100)
	k.atLeast(prefix+"outlier.success_rate_minimum_hosts", o.SuccessRateMinHosts, 1)
	k.atLeast(prefix+"outlier.success_rate_request_volume", o.SuccessRateMinRequest, 1)
	if !(o.SuccessRateStdevFactor > 0) {
		k.add(prefix+"outlier.success_rate_stdev_factor", "must be above 0, got %g", o.SuccessRateStdevFactor)
	}

	k.notNegative(prefix+"warmup.duration", p.Warmup.Duration, "no slow start")
	k.intIn(prefix+"warmup.min_weight_percent", p.Warmup.MinWeightPercent, 1, 100)
}

func (k *checker) retries(prefix string, r Retries) {
	k.intIn(prefix+"retries.max", r.Max, 0, 10)
	k.floatIn(prefix+"retries.budget_percent", r.BudgetPercent, 0, 100)
	k.intIn(prefix+"retries.min_per_second", r.MinPerSecond, 0, 100000)
	k.notNegative(prefix+"retries.per_try_timeout", r.PerTryTimeout, "no per-try limit")
	if r.BufferBodyBytes < 0 {
		k.add(prefix+"retries.buffer_body_bytes", "must not be negative (0 means never buffer), got %d", r.BufferBodyBytes)
	}
}

// CheckPolicy checks a policy with its sticky settings as a config file's
// are checked; the admin API and the state file use it, so a policy is
// judged alike wherever it comes from. Paths are "policy" and "sticky.key".
func CheckPolicy(policy string, sticky Sticky) error {
	var k checker
	k.oneOf("policy", policy, Policies...)
	k.stickyKey("sticky.key", sticky.Key)
	return k.err()
}

// CheckCanaryPercent checks a canary share as the config file's is checked.
func CheckCanaryPercent(p float64) error {
	var k checker
	k.floatIn("canary.percent", p, 0, 100)
	return k.err()
}

// Validate checks one backend on its own, as the admin API must before it
// adds one; paths in the error are relative ("weight").
func (b Backend) Validate() error {
	var k checker
	k.backend("", b)
	return k.err()
}

// backend checks b, with prefix before each field name, and returns its
// normalised URL ("" when the URL is invalid).
func (k *checker) backend(prefix string, b Backend) string {
	u, err := NormalizeURL(b.URL)
	if err != nil {
		k.add(prefix+"url", "%v", err)
	}
	k.intIn(prefix+"weight", b.Weight, 1, MaxWeight)
	if b.MaxInflight < 0 || b.MaxInflight > MaxInflight {
		k.add(prefix+"max_inflight", "must be between 0 (no cap) and %d, got %d", MaxInflight, b.MaxInflight)
	}
	k.oneOf(prefix+"protocol", b.Protocol, "http1", "h2c", "h2")
	k.label(prefix+"name", b.Name, false)
	if err != nil {
		return ""
	}
	https := strings.HasPrefix(u, "https:")
	switch {
	case b.Protocol == "h2" && !https:
		k.add(prefix+"protocol", "h2 needs an https URL; use h2c for cleartext HTTP/2")
	case b.Protocol == "h2c" && https:
		k.add(prefix+"protocol", "h2c is cleartext HTTP/2 and needs an http URL; use h2 with https")
	}
	if !https && b.CAFile != "" {
		k.add(prefix+"ca_file", "is only used with https URLs")
	}
	if !https && b.ServerName != "" {
		k.add(prefix+"server_name", "is only used with https URLs")
	}
	return u
}

func (k *checker) stickyKey(path, key string) {
	kind, name, found := strings.Cut(key, ":")
	switch {
	case key == "ip":
	case !found || kind != "header" && kind != "cookie":
		k.add(path, "must be ip, header:NAME or cookie:NAME, got %q", key)
	case name == "":
		k.add(path, "needs a name after %q, as in \"%s:X-User\"", kind+":", kind)
	case strings.ContainsFunc(name, func(r rune) bool { return !isTokenChar(r) }):
		k.add(path, "%q is not a valid %s name (letters, digits and !#$%%&'*+-.^_`|~ only)", name, kind)
	}
}

// isTokenChar reports whether r may appear in an RFC 9110 token, the syntax
// of both header and cookie names.
func isTokenChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
		strings.ContainsRune("!#$%&'*+-.^_`|~", r)
}

func (k *checker) admission(a Admission) {
	k.intIn("admission.max_inflight", a.MaxInflight, 1, MaxInflight)
	if !(a.RatePerClient >= 0) {
		k.add("admission.rate_per_client", "must not be negative (0 means no per-client limit), got %g", a.RatePerClient)
	}
	if a.BurstPerClient < 0 {
		k.add("admission.burst_per_client", "must not be negative, got %d", a.BurstPerClient)
	} else if a.RatePerClient > 0 && a.BurstPerClient < 1 {
		k.add("admission.burst_per_client", "must be at least 1 when admission.rate_per_client is set, got %d", a.BurstPerClient)
	}
	k.atLeast("admission.max_clients", a.MaxClients, 1)
	k.positive("admission.client_idle", a.ClientIdle)
	for i, s := range a.TrustedProxies {
		if _, err := netip.ParsePrefix(s); err == nil {
			continue
		}
		if _, err := netip.ParseAddr(s); err != nil {
			k.add(fmt.Sprintf("admission.trusted_proxies[%d]", i), "%q is not an IP address or CIDR prefix such as \"10.0.0.0/8\"", s)
		}
	}
	if a.MaxBodyBytes < 0 {
		k.add("admission.max_body_bytes", "must not be negative (0 means no limit), got %d", a.MaxBodyBytes)
	}
	k.countIn("admission.max_connections", a.MaxConnections, MaxConnections)
	k.countIn("admission.max_header_count", a.MaxHeaderCount, MaxHeaderCount)
	k.countIn("admission.max_uri_bytes", a.MaxURIBytes, MaxURIBytes)
}

// countIn checks a cap for which 0 means none.
func (k *checker) countIn(path string, v, hi int) {
	if v < 0 || v > hi {
		k.add(path, "must be between 0 (no cap) and %d, got %d", hi, v)
	}
}

func (k *checker) aimd(a AIMD, maxInflight int) {
	k.oneOf("aimd.algorithm", a.Algorithm, "aimd", "gradient2")
	k.positive("aimd.target_latency", a.TargetLatency)
	k.oneOf("aimd.target_mode", a.TargetMode, "relative", "absolute")
	if !(a.Tolerance > 1) {
		k.add("aimd.tolerance", "must be above 1 (2 means twice the backends' baseline latency), got %g", a.Tolerance)
	}
	if !(a.Percentile > 0 && a.Percentile <= 1) {
		k.add("aimd.percentile", "must be above 0 and at most 1 (0.9 is p90), got %g", a.Percentile)
	}
	k.atLeast("aimd.min_limit", a.MinLimit, 1)
	if a.MaxLimit < a.MinLimit {
		k.add("aimd.max_limit", "must be at least aimd.min_limit (%d), got %d", a.MinLimit, a.MaxLimit)
	} else if a.Enabled && a.MaxLimit > maxInflight && maxInflight >= 1 {
		k.add("aimd.max_limit", "must not exceed admission.max_inflight (%d), got %d; lower it too", maxInflight, a.MaxLimit)
	}
	k.atLeast("aimd.increase", a.Increase, 1)
	if !(a.DecreaseFactor > 0 && a.DecreaseFactor < 1) {
		k.add("aimd.decrease_factor", "must be above 0 and below 1 (0.7 cuts the limit by 30%%), got %g", a.DecreaseFactor)
	}
	k.positive("aimd.interval", a.Interval)
}
