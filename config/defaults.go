package config

import (
	"strings"
	"time"
)

// Policies are the scheduling policies lbd understands.
var Policies = []string{"rr", "wrr", "lc", "p2c-ewma"}

// Tracing defaults, for what neither the tracing section nor the OTEL_*
// environment sets: OTLP over HTTP to a local collector, every new trace
// sampled (the OpenTelemetry SDK's own default, parentbased_always_on). The
// endpoints are the OTLP specification's defaults for each protocol.
const (
	DefaultTracingEndpoint     = "http://localhost:4318"
	DefaultTracingEndpointGRPC = "http://localhost:4317"
	DefaultTracingProtocol     = "http/protobuf"
	DefaultTracingSampleRatio  = 1.0
	DefaultTracingService      = "lbd"
)

// TracingProtocols are the OTLP protocols lbd can export with.
var TracingProtocols = []string{"http/protobuf", "http/json", "grpc"}

// Default returns the built-in configuration: API.md's documented defaults
// and no backends.
func Default() *Config {
	return &Config{
		Listen:    ":3030",
		Admin:     Admin{Listen: "127.0.0.1:3031"},
		WebSocket: WebSocket{DrainTimeout: Duration(10 * time.Second)},
		Policy:    "p2c-ewma",
		Sticky:    Sticky{Key: "ip"},
		Health: Health{
			Path: "/healthz", Interval: Duration(2 * time.Second), Timeout: Duration(time.Second),
			Jitter: 0.2, Rise: 2, Fall: 3, ExpectedStatus: 200,
		},
		Breaker: Breaker{
			FailureThreshold: 5, OpenFor: Duration(10 * time.Second), HalfOpenProbes: 1,
			MaxOpenFor: Duration(5 * time.Minute),
		},
		Outlier: Outlier{
			Consecutive5xx: 5, ConsecutiveGatewayErr: 5, Interval: Duration(10 * time.Second),
			BaseEjection: Duration(30 * time.Second), MaxEjection: Duration(5 * time.Minute),
			MaxEjectionPercent: 50, SuccessRateMinHosts: 3, SuccessRateMinRequest: 100,
			SuccessRateStdevFactor: 1.9,
		},
		Warmup: Warmup{Duration: Duration(30 * time.Second), MinWeightPercent: 10},
		Admission: Admission{
			MaxInflight: 1024, MaxClients: 100_000, ClientIdle: Duration(5 * time.Minute),
			MaxConnections: 10_000, MaxHeaderCount: 100, MaxURIBytes: 8 << 10,
		},
		AIMD: AIMD{
			Enabled: true, Algorithm: "aimd", TargetLatency: Duration(100 * time.Millisecond),
			TargetMode: "relative", Tolerance: 2,
			Percentile: 0.9, MinLimit: 8, MaxLimit: 1024, Increase: 1, DecreaseFactor: 0.7,
			Interval: Duration(500 * time.Millisecond),
		},
		Retries: Retries{Max: 1, BudgetPercent: 20, MinPerSecond: 10, BufferBodyBytes: 64 << 10},
		Timeouts: Timeouts{
			Dial: Duration(2 * time.Second), ResponseHeader: Duration(30 * time.Second),
			IdleConn: Duration(90 * time.Second), ClientReadHeader: Duration(10 * time.Second),
			ClientIdle: Duration(120 * time.Second), MaxHeaderBytes: 64 << 10,
			ClientStall: Duration(time.Minute),
		},
		AccessLog:     AccessLog{Mode: "on", SampleRate: 1},
		MetricsDump:   MetricsDump{Interval: Duration(10 * time.Second), Keep: 24},
		ShutdownGrace: Duration(15 * time.Second),
	}
}

// MinDiscoveryRefresh is the floor of a discovery source's refresh: a
// record TTL of 0 (Consul's default) or 1s must not turn into a query storm.
const MinDiscoveryRefresh = time.Second

// DefaultDiscovery is what a discovery entry means before its keys are
// applied. Type and DNS have no default: they say what to look up.
func DefaultDiscovery() Discovery {
	return Discovery{Refresh: Duration(10 * time.Second), Scheme: "http", Protocol: "http1", Weight: 1}
}

// DefaultFleet is what a "fleet" section means before its keys are
// applied: one local etcd, keys under /lbd/.
func DefaultFleet() Fleet {
	return Fleet{Etcd: Etcd{
		Endpoints: []string{"http://127.0.0.1:2379"}, Prefix: "/lbd/", DialTimeout: Duration(2 * time.Second),
	}}
}

// ReplicaName is this replica's name in the fleet: fleet.name when set,
// else "HOST@ADMINADDR" (os.Hostname and the admin listener's bound
// address), which tells apart two replicas on one machine. It is a key
// segment, so a "/" in either part becomes "_".
func (f *Fleet) ReplicaName(host, adminAddr string) string {
	if f.Name != "" {
		return f.Name
	}
	return strings.ReplaceAll(host+"@"+adminAddr, "/", "_")
}
