package config

import "time"

// Policies are the scheduling policies lbd understands.
var Policies = []string{"rr", "wrr", "lc", "p2c-ewma"}

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
			Percentile: 0.9, MinLimit: 8, MaxLimit: 1024, Increase: 1, DecreaseFactor: 0.7,
			Interval: Duration(500 * time.Millisecond),
		},
		Retries: Retries{Max: 1, BudgetPercent: 20, BufferBodyBytes: 64 << 10},
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
