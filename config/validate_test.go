package config

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// validBase is a valid config with two backends for Validate cases to bend.
func validBase() *Config {
	c := Default()
	c.Backends = []Backend{
		{URL: "http://localhost:8081", Weight: 1, Protocol: "http1"},
		{URL: "https://localhost:8443", Weight: 2, Protocol: "h2"},
	}
	return c
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(c *Config)
		want   []Problem // nil: valid
	}{
		{"base", func(c *Config) {}, nil},
		{"no backends is valid: the admin API adds them", func(c *Config) { c.Backends = nil }, nil},
		{"listen port 0 picks a free port", func(c *Config) { c.Listen = "127.0.0.1:0" }, nil},
		{"listen without port", func(c *Config) { c.Listen = "localhost" },
			[]Problem{{"listen", `"localhost" is not host:port, as in ":3030" or "127.0.0.1:3031"`}}},
		{"admin port out of range", func(c *Config) { c.Admin.Listen = "127.0.0.1:70000" },
			[]Problem{{"admin.listen", `"127.0.0.1:70000" has port "70000"; ports are numbers from 0 to 65535`}}},
		{"tls key without cert", func(c *Config) { c.TLS.KeyFile = "k.pem" },
			[]Problem{{"tls.cert_file", "must be set when tls.key_file is set (set both to serve HTTPS, or neither)"}}},
		{"h2c with tls", func(c *Config) { c.TLS = TLS{CertFile: "c", KeyFile: "k"}; c.H2C = true },
			[]Problem{{"h2c", "cleartext HTTP/2 cannot be combined with tls; HTTPS already offers h2 through ALPN"}}},
		{"weight 1000 is the maximum", func(c *Config) { c.Backends[0].Weight = MaxWeight }, nil},
		{"weight negative", func(c *Config) { c.Backends[1].Weight = -3 },
			[]Problem{{"backends[1].weight", "must be between 1 and 1000, got -3"}}},
		{"h2c over https", func(c *Config) { c.Backends[1].Protocol = "h2c" },
			[]Problem{{"backends[1].protocol", "h2c is cleartext HTTP/2 and needs an http URL; use h2 with https"}}},
		{"tls options on http", func(c *Config) { c.Backends[0].CAFile = "ca.pem"; c.Backends[0].ServerName = "x" },
			[]Problem{{"backends[0].ca_file", "is only used with https URLs"}, {"backends[0].server_name", "is only used with https URLs"}}},
		{"duplicate after normalising", func(c *Config) { c.Backends[1] = Backend{URL: "http://LOCALHOST:8081/", Weight: 1, Protocol: "http1"} },
			[]Problem{{"backends[1].url", `"http://LOCALHOST:8081/" is the same backend as backends[0] (both are http://localhost:8081)`}}},
		{"every policy", func(c *Config) { c.Policy = "wrr" }, nil},
		{"sticky header", func(c *Config) { c.Sticky = Sticky{Enabled: true, Key: "header:X-User-Id"} }, nil},
		{"sticky unknown kind", func(c *Config) { c.Sticky.Key = "query:id" },
			[]Problem{{"sticky.key", `must be ip, header:NAME or cookie:NAME, got "query:id"`}}},
		{"canary normalised match", func(c *Config) { c.Canary = Canary{Backend: "HTTP://localhost:8081/", Percent: 100} }, nil},
		{"canary zero percent may name any valid URL", func(c *Config) { c.Canary = Canary{Backend: "http://elsewhere"} }, nil},
		{"canary percent without backend", func(c *Config) { c.Canary.Percent = 5 },
			[]Problem{{"canary.backend", "must name one of the backends when canary.percent is above 0"}}},
		{"canary bad URL", func(c *Config) { c.Canary = Canary{Backend: "localhost:8081", Percent: 5} },
			[]Problem{{"canary.backend", `"localhost:8081" must start with http:// or https://`}}},
		{"NaN percent", func(c *Config) { c.Canary.Percent = math.NaN() },
			[]Problem{{"canary.percent", "must be between 0 and 100, got NaN"}}},
		{"health", func(c *Config) {
			c.Health = Health{Path: "/a b", Interval: 0, Timeout: -1, Jitter: -0.1, Rise: 1, Fall: 0, ExpectedStatus: 600}
		}, []Problem{
			{"health.path", `must be a request path starting with "/" and without spaces, got "/a b"`},
			{"health.interval", `must be a positive duration such as "1s", got 0s`},
			{"health.timeout", `must be a positive duration such as "1s", got -1ns`},
			{"health.jitter", "must be between 0 and 1, got -0.1"},
			{"health.fall", "must be at least 1, got 0"},
			{"health.expected_status", "must be between 100 and 599, got 600"},
		}},
		{"breaker max below open", func(c *Config) { c.Breaker.OpenFor = Duration(10 * time.Minute) },
			[]Problem{{"breaker.max_open_for", "must be at least breaker.open_for (10m0s), got 5m0s"}}},
		{"outlier", func(c *Config) {
			c.Outlier.Consecutive5xx = 0
			c.Outlier.MaxEjection = Duration(time.Second)
			c.Outlier.SuccessRateStdevFactor = 0
		}, []Problem{
			{"outlier.consecutive_5xx", "must be at least 1, got 0"},
			{"outlier.max_ejection", "must be at least outlier.base_ejection (30s), got 1s"},
			{"outlier.success_rate_stdev_factor", "must be above 0, got 0"},
		}},
		{"warmup zero means none", func(c *Config) { c.Warmup.Duration = 0 }, nil},
		{"warmup negative", func(c *Config) { c.Warmup.Duration = Duration(-time.Second) },
			[]Problem{{"warmup.duration", "must not be negative (0 means no slow start), got -1s"}}},
		{"admission", func(c *Config) {
			c.Admission.MaxInflight = 0
			c.Admission.RatePerClient = -1
			c.Admission.BurstPerClient = -1
			c.Admission.TrustedProxies = []string{"10.0.0.1", "fd00::/8", "10.0.0.0/8", "x"}
		}, []Problem{
			{"admission.max_inflight", "must be between 1 and 1000000, got 0"},
			{"admission.rate_per_client", "must not be negative (0 means no per-client limit), got -1"},
			{"admission.burst_per_client", "must not be negative, got -1"},
			{"admission.trusted_proxies[3]", `"x" is not an IP address or CIDR prefix such as "10.0.0.0/8"`},
		}},
		{"input limits", func(c *Config) {
			c.Admission.MaxConnections = -1
			c.Admission.MaxHeaderCount = MaxHeaderCount + 1
			c.Admission.MaxURIBytes = -5
			c.Timeouts.ClientStall = Duration(-time.Second)
		}, []Problem{
			{"admission.max_connections", "must be between 0 (no cap) and 10000000, got -1"},
			{"admission.max_header_count", "must be between 0 (no cap) and 10000, got 10001"},
			{"admission.max_uri_bytes", "must be between 0 (no cap) and 1048576, got -5"},
			{"timeouts.client_stall", "must not be negative (0 means never cut a stalled client), got -1s"},
		}},
		{"input limits off", func(c *Config) {
			c.Admission.MaxConnections, c.Admission.MaxHeaderCount, c.Admission.MaxURIBytes, c.Timeouts.ClientStall = 0, 0, 0, 0
		}, nil},
		{"aimd disabled does not bind to admission", func(c *Config) {
			c.Admission.MaxInflight = 10
			c.AIMD.Enabled = false
		}, nil},
		{"aimd", func(c *Config) {
			c.AIMD.Algorithm = "vegas"
			c.AIMD.MinLimit = 0
			c.AIMD.Increase = 0
			c.AIMD.DecreaseFactor = 0
		}, []Problem{
			{"aimd.algorithm", `must be one of aimd, gradient2, got "vegas"`},
			{"aimd.min_limit", "must be at least 1, got 0"},
			{"aimd.increase", "must be at least 1, got 0"},
			{"aimd.decrease_factor", "must be above 0 and below 1 (0.7 cuts the limit by 30%), got 0"},
		}},
		{"timeouts zero means no limit", func(c *Config) { c.Timeouts.ResponseHeader, c.Timeouts.IdleConn = 0, 0 }, nil},
		{"dial must be positive", func(c *Config) { c.Timeouts.Dial = 0; c.Timeouts.MaxHeaderBytes = -1 }, []Problem{
			{"timeouts.dial", `must be a positive duration such as "1s", got 0s`},
			{"timeouts.max_header_bytes", "must not be negative (0 means Go's default of 1 MB), got -1"},
		}},
		{"metrics dump off ignores keep", func(c *Config) { c.MetricsDump.Keep = 0 }, nil},
		{"shutdown grace", func(c *Config) { c.ShutdownGrace = Duration(-1) },
			[]Problem{{"shutdown_grace", "must not be negative (0 means stop without waiting), got -1ns"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validBase()
			tc.change(c)
			err := c.Validate()
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			var ve *ValidationError
			require.True(t, errors.As(err, &ve), "want a *ValidationError, got %v", err)
			require.Equal(t, tc.want, ve.Problems)
		})
	}
}

func TestBackendValidate(t *testing.T) {
	b := DefaultBackend()
	b.URL = "http://a:1"
	require.NoError(t, b.Validate())

	b = Backend{URL: "http://a:1/x", Weight: 0, MaxInflight: -1}
	require.EqualError(t, b.Validate(), strings.Join([]string{
		`url: "http://a:1/x" has a path; give only scheme, host and port`,
		"weight: must be between 1 and 1000, got 0",
		"max_inflight: must be between 0 (no cap) and 1000000, got -1",
		`protocol: must be one of http1, h2c, h2, got ""`,
	}, "\n"))
}

func TestValidationErrorFormat(t *testing.T) {
	e := &ValidationError{Problems: []Problem{{"a.b", "is wrong"}, {"", "the file is empty"}}}
	require.Equal(t, "a.b: is wrong\nthe file is empty", e.Error())
	e.File = "lbd.json"
	require.Equal(t, "lbd.json: a.b: is wrong\nlbd.json: the file is empty", e.Error())
}
