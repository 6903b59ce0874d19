// Package config is lbd's configuration: the JSON schema of API.md, its
// defaults, strict decoding and validation. It is plain data: any package may
// import it, and nothing in it is mutable after Load returns.
package config

import (
	"encoding/json"
	"fmt"
	"time"
)

// Duration is a time.Duration written in JSON as a Go duration string ("250ms").
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes the duration as a string such as "1.5s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON accepts a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration string such as \"250ms\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (examples: \"250ms\", \"2s\", \"1m\")", s)
	}
	*d = Duration(v)
	return nil
}

// Config is the whole configuration file. The zero value of an omitted
// section is replaced by its default in Default and Parse.
//
// A field whose zero value is meaningful and differs from its default has no
// omitempty tag, so that a marshalled Config (the state file, /debug/config)
// parses back to the same Config instead of silently regaining the default.
type Config struct {
	Listen        string      `json:"listen"`
	Admin         Admin       `json:"admin"`
	TLS           TLS         `json:"tls"`
	H2C           bool        `json:"h2c"`
	WebSocket     WebSocket   `json:"websocket"`
	Backends      []Backend   `json:"backends"`
	Discovery     []Discovery `json:"discovery"`
	Policy        string      `json:"policy"`
	Sticky        Sticky      `json:"sticky"`
	Canary        Canary      `json:"canary"`
	Health        Health      `json:"health"`
	Breaker       Breaker     `json:"breaker"`
	Outlier       Outlier     `json:"outlier"`
	Warmup        Warmup      `json:"warmup"`
	Admission     Admission   `json:"admission"`
	AIMD          AIMD        `json:"aimd"`
	Retries       Retries     `json:"retries"`
	Timeouts      Timeouts    `json:"timeouts"`
	AccessLog     AccessLog   `json:"access_log"`
	MetricsDump   MetricsDump `json:"metrics_dump"`
	StateFile     string      `json:"state_file"`
	ShutdownGrace Duration    `json:"shutdown_grace"`
	// Tracing, when set, exports OpenTelemetry spans of every request over
	// OTLP; nil leaves tracing to the OTEL_* environment, which is off
	// unless it names an OTLP endpoint (package tracing).
	Tracing *Tracing `json:"tracing,omitempty"`

	// Pools are the named pools besides "default", whose backends, policy,
	// sticky, canary and per-pool settings are the top-level ones above.
	// Routes send requests to pools; without routes everything goes to
	// "default" (pools.go).
	Pools  map[string]Pool `json:"pools,omitempty"`
	Routes []Route         `json:"routes,omitempty"`
	// Fleet, when set, makes this lbd one replica of several that share
	// their runtime state (admin changes) through etcd; nil runs alone.
	Fleet *Fleet `json:"fleet,omitempty"`
}

// Fleet configures fleet mode: the runtime overlay (backends added or
// removed through the admin API, drain, weight, cap, policy, sticky, canary)
// lives under Etcd.Prefix instead of in state_file, and every replica
// applies it from its watch.
type Fleet struct {
	Etcd Etcd `json:"etcd"`
	// Name identifies this replica under <prefix>replicas/. Empty: the
	// daemon calls ReplicaName (host name and admin address).
	Name string `json:"name"`
}

// Etcd is how a replica reaches the etcd cluster.
type Etcd struct {
	Endpoints []string `json:"endpoints"`
	// Prefix is prepended to every key lbd reads or writes ("/lbd/").
	Prefix      string   `json:"prefix"`
	DialTimeout Duration `json:"dial_timeout"`
	// Username and PasswordFile, both or neither, log in to an etcd with
	// authentication on; the file holds the password (trailing white space
	// is trimmed), so it stays out of the config file.
	Username     string `json:"username"`
	PasswordFile string `json:"password_file"`
	// CAFile verifies the servers of https endpoints (system roots when
	// empty); CertFile and KeyFile, both or neither, are the client
	// certificate an etcd with --client-cert-auth asks for.
	CAFile   string `json:"ca_file"`
	CertFile string `json:"cert_file"`
	KeyFile  string `json:"key_file"`
}

// Admin configures the admin listener (admin REST, /metrics, /debug).
type Admin struct {
	Listen    string `json:"listen"`
	TokenFile string `json:"token_file"`
}

// TLS, when both files are set, makes the data-plane listener serve HTTPS.
type TLS struct {
	CertFile string `json:"cert_file"`
	KeyFile  string `json:"key_file"`
}

// WebSocket configures upgraded connections (WebSocket and other HTTP/1.1
// Upgrade protocols), which outlive ordinary requests.
type WebSocket struct {
	// DrainTimeout is how long an open WebSocket may continue after its
	// backend is drained or removed, or after lbd starts shutting down (where
	// shutdown_grace bounds it too); then lbd closes it. 0 closes at once.
	DrainTimeout Duration `json:"drain_timeout"`
}

// Backend is one upstream server.
type Backend struct {
	URL string `json:"url"`
	// Name is an optional label shown next to the URL (admin API, tap,
	// events, the status page); the URL stays the backend's identity.
	Name        string `json:"name,omitempty"`
	Weight      int    `json:"weight"`
	MaxInflight int    `json:"max_inflight"`
	// Protocol is http1 (default), h2c or h2 (needs an https URL).
	Protocol   string `json:"protocol"`
	CAFile     string `json:"ca_file,omitempty"`
	ServerName string `json:"server_name,omitempty"`
}

// Discovery is one DNS source of backends: the members it finds join the
// pool beside its static backends and follow the records while lbd runs
// (package discovery). The type stands alone so that a pool section can hold
// a list of them too.
type Discovery struct {
	// DNS is the name to look up: an SRV name such as
	// "_http._tcp.api.service.consul", or a host name for type a.
	DNS string `json:"dns"`
	// Type is "srv" (targets and ports from SRV records) or "a" (every A
	// and AAAA address, with Port).
	Type string `json:"type"`
	// Port is the backends' port for type a; SRV records carry their own,
	// so it must be left out (0) for type srv.
	Port int `json:"port,omitempty"`
	// Resolver is the DNS server as IP:port; empty means the nameservers
	// of /etc/resolv.conf.
	Resolver string `json:"resolver"`
	// Refresh is the longest time between two lookups; a lower record TTL
	// makes it shorter, never below MinDiscoveryRefresh.
	Refresh Duration `json:"refresh"`
	// Scheme is http or https; Protocol, MaxInflight, CAFile and ServerName
	// mean what they mean for a static backend, for every member.
	Scheme      string `json:"scheme"`
	Protocol    string `json:"protocol"`
	MaxInflight int    `json:"max_inflight"`
	// Weight is every member's weight for type a; for type srv it scales
	// each record's weight (a record weight of 0 counts as 1).
	Weight     int    `json:"weight"`
	CAFile     string `json:"ca_file,omitempty"`
	ServerName string `json:"server_name,omitempty"`
}

// Sticky pins a client key to a backend by consistent hashing.
type Sticky struct {
	Enabled bool `json:"enabled"`
	// Key is "ip", "header:NAME" or "cookie:NAME".
	Key string `json:"key"`
}

// Canary sends Percent of requests to Backend.
type Canary struct {
	Backend string  `json:"backend"`
	Percent float64 `json:"percent"`
}

// Health configures active health checks.
type Health struct {
	Path           string   `json:"path"`
	Interval       Duration `json:"interval"`
	Timeout        Duration `json:"timeout"`
	Jitter         float64  `json:"jitter"`
	Rise           int      `json:"rise"`
	Fall           int      `json:"fall"`
	ExpectedStatus int      `json:"expected_status"`
	// Disabled turns active probing off; backends are then judged by traffic only.
	Disabled bool `json:"disabled,omitempty"`
}

// Breaker configures each backend's circuit breaker.
type Breaker struct {
	FailureThreshold int      `json:"failure_threshold"`
	OpenFor          Duration `json:"open_for"`
	HalfOpenProbes   int      `json:"half_open_probes"`
	MaxOpenFor       Duration `json:"max_open_for"`
}

// Outlier configures passive outlier ejection.
type Outlier struct {
	Consecutive5xx         int      `json:"consecutive_5xx"`
	ConsecutiveGatewayErr  int      `json:"consecutive_gateway_failure"`
	Interval               Duration `json:"interval"`
	BaseEjection           Duration `json:"base_ejection"`
	MaxEjection            Duration `json:"max_ejection"`
	MaxEjectionPercent     int      `json:"max_ejection_percent"`
	SuccessRateMinHosts    int      `json:"success_rate_minimum_hosts"`
	SuccessRateMinRequest  int      `json:"success_rate_request_volume"`
	SuccessRateStdevFactor float64  `json:"success_rate_stdev_factor"`
	Disabled               bool     `json:"disabled,omitempty"`
}

// Warmup configures slow start after a backend joins or recovers.
type Warmup struct {
	Duration         Duration `json:"duration"`
	MinWeightPercent int      `json:"min_weight_percent"`
}

// Admission configures the data plane's admission control.
type Admission struct {
	MaxInflight    int      `json:"max_inflight"`
	RatePerClient  float64  `json:"rate_per_client"`
	BurstPerClient int      `json:"burst_per_client"`
	MaxClients     int      `json:"max_clients"`
	ClientIdle     Duration `json:"client_idle"`
	TrustedProxies []string `json:"trusted_proxies,omitempty"`
	MaxBodyBytes   int64    `json:"max_body_bytes"`
	// MaxConnections caps the client connections open at once on the data
	// listener; more are closed at accept (0: no cap of its own). lbd
	// lowers it to what its file descriptor limit can serve.
	MaxConnections int `json:"max_connections"`
	// MaxHeaderCount caps the header fields of a request (431 beyond) and
	// MaxURIBytes the length of its request target (414 beyond); 0: no cap.
	MaxHeaderCount int `json:"max_header_count"`
	MaxURIBytes    int `json:"max_uri_bytes"`
}

// AIMD configures the adaptive concurrency limit.
type AIMD struct {
	Enabled       bool     `json:"enabled"`
	Algorithm     string   `json:"algorithm"` // aimd | gradient2
	TargetLatency Duration `json:"target_latency"`
	// TargetMode says what "over target" means. "relative" (the default):
	// the latency percentile is over both target_latency and tolerance x
	// the backends' own baseline, which lbd learns while the limit is out
	// of play; a service that is simply slower than target_latency is not
	// throttled for it. "absolute": over target_latency, whatever the
	// backends usually do (lbd before this setting existed).
	TargetMode string `json:"target_mode"`
	// Tolerance is, in relative mode, how many times its baseline the
	// latency may be before it counts as over target (default 2).
	Tolerance      float64  `json:"tolerance"`
	Percentile     float64  `json:"percentile"`
	MinLimit       int      `json:"min_limit"`
	MaxLimit       int      `json:"max_limit"`
	Increase       int      `json:"increase"`
	DecreaseFactor float64  `json:"decrease_factor"`
	Interval       Duration `json:"interval"`
	// SlowStart starts the limit at min_limit, doubling it each interval it
	// is reached under target, instead of at max_limit (see docs/SCENARIOS.md).
	SlowStart bool `json:"slow_start"`
}

// Retries configures retries of failed requests on other backends.
type Retries struct {
	Max int `json:"max"`
	// BudgetPercent and MinPerSecond are the retry budget: over the last
	// 10 s, retries at most BudgetPercent of the requests of that time plus
	// MinPerSecond a second.
	BudgetPercent   float64  `json:"budget_percent"`
	MinPerSecond    int      `json:"min_per_second"`
	PerTryTimeout   Duration `json:"per_try_timeout"`
	BufferBodyBytes int64    `json:"buffer_body_bytes"`
}

// Timeouts bound the time spent on both sides of the proxy.
type Timeouts struct {
	Dial             Duration `json:"dial"`
	ResponseHeader   Duration `json:"response_header"`
	IdleConn         Duration `json:"idle_conn"`
	ClientReadHeader Duration `json:"client_read_header"`
	ClientIdle       Duration `json:"client_idle"`
	MaxHeaderBytes   int      `json:"max_header_bytes"`
	// ClientStall cuts a client that has sent no byte of its request body,
	// or taken no byte of its response, for this long (0: never).
	ClientStall Duration `json:"client_stall"`
}

// AccessLog configures the per-request JSON log lines.
type AccessLog struct {
	// Mode is "on" (default), "off" or "sampled".
	Mode string `json:"mode"`
	// SampleRate is the fraction of requests logged when Mode is "sampled";
	// errors and rejections are always logged.
	SampleRate float64 `json:"sample_rate"`
	// File is the path to write to; empty means standard output.
	File string `json:"file"`
}

// Tracing configures OpenTelemetry tracing: a SERVER span per request and a
// CLIENT span per attempt, exported over OTLP. Each field left empty (or
// null) falls back to its standard OTEL_* environment variable, then to the
// default named here, so that the file wins where it speaks.
type Tracing struct {
	// Endpoint is the collector's base URL, as OTEL_EXPORTER_OTLP_ENDPOINT:
	// spans go to <endpoint>/v1/traces over HTTP, or to the host over gRPC
	// (https means TLS). Default DefaultTracingEndpoint, or
	// DefaultTracingEndpointGRPC for grpc.
	Endpoint string `json:"endpoint"`
	// Protocol is "http/protobuf" (default), "http/json" or "grpc"
	// (OTEL_EXPORTER_OTLP_PROTOCOL).
	Protocol string `json:"protocol"`
	// SampleRatio is the share of new traces recorded, 0..1; a request
	// arriving with a traceparent keeps its caller's decision. null: from
	// OTEL_TRACES_SAMPLER(_ARG), else 1.
	SampleRatio *float64 `json:"sample_ratio"`
	// ServiceName is the resource's service.name (OTEL_SERVICE_NAME, else "lbd").
	ServiceName string `json:"service_name"`
	// Headers are sent with every export (an API key), on top of
	// OTEL_EXPORTER_OTLP_HEADERS; /debug/config shows their names only.
	Headers map[string]string `json:"headers,omitempty"`
}

// MetricsDump configures the periodic JSON-lines metrics files.
type MetricsDump struct {
	Dir      string   `json:"dir"`
	Interval Duration `json:"interval"`
	Keep     int      `json:"keep"`
}
