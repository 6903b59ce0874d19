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
			c.AIMD.TargetMode = "vibes"
			c.AIMD.Tolerance = 1
		}, []Problem{
			{"aimd.algorithm", `must be one of aimd, gradient2, got "vegas"`},
			{"aimd.target_mode", `must be one of relative, absolute, got "vibes"`},
			{"aimd.tolerance", "must be above 1 (2 means twice the backends' baseline latency), got 1"},
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
		{"fleet defaults", func(c *Config) { f := DefaultFleet(); c.Fleet = &f }, nil},
		{"fleet over tls with a client certificate and a login", func(c *Config) {
			c.Fleet = &Fleet{Name: "eu-1", Etcd: Etcd{
				Endpoints: []string{"https://e1:2379", "https://[2001:db8::1]:2379"}, Prefix: "/lbd/prod/",
				DialTimeout: Duration(time.Second), Username: "lbd", PasswordFile: "/p",
				CAFile: "/ca", CertFile: "/c", KeyFile: "/k",
			}}
		}, nil},
		{"fleet with state_file", func(c *Config) { f := DefaultFleet(); c.Fleet = &f; c.StateFile = "/var/lib/lbd/s.json" },
			[]Problem{{"state_file", "with fleet, state_file is not used; remove it"}}},
		{"fleet", func(c *Config) {
			c.Fleet = &Fleet{Name: "a/b", Etcd: Etcd{
				Endpoints:   []string{"https://e1:2379", "http://e2:2379", "e3:2379", "unix:///run/etcd.sock", "http://e4", "http://u:p@e5:1"},
				Prefix:      "/lbd",
				Username:    "lbd",
				KeyFile:     "/k",
				DialTimeout: 0,
			}}
		}, []Problem{
			{"fleet.etcd.endpoints[1]", `"http://e2:2379" uses http while the first endpoint uses https; one cluster is reached one way`},
			{"fleet.etcd.endpoints[2]", `"e3:2379" is not a URL such as "http://127.0.0.1:2379"`},
			{"fleet.etcd.endpoints[3]", `"unix:///run/etcd.sock" has scheme "unix"; etcd client URLs are http or https`},
			{"fleet.etcd.endpoints[4]", `"http://e4" needs a host and a port, as in "http://127.0.0.1:2379"`},
			{"fleet.etcd.endpoints[5]", `"http://u:p@e5:1" must be only scheme, host and port`},
			{"fleet.etcd.prefix", `must end with "/" so that its keys stay apart from a longer prefix, as in "/lbd/"`},
			{"fleet.etcd.dial_timeout", `must be a positive duration such as "1s", got 0s`},
			{"fleet.etcd.password_file", "must be set when fleet.etcd.username is set (the file holds the password)"},
			{"fleet.etcd.cert_file", "must be set when fleet.etcd.key_file is set (set both for a client certificate, or neither)"},
			{"fleet.name", `must not contain "/": it is one key segment under <prefix>replicas/, got "a/b"`},
		}},
		{"fleet tls files over http", func(c *Config) {
			f := DefaultFleet()
			f.Etcd.CAFile, f.Etcd.PasswordFile = "/ca", "/p"
			f.Etcd.Endpoints = nil
			c.Fleet = &f
		}, []Problem{
			{"fleet.etcd.endpoints", `must list at least one etcd client URL, such as "http://127.0.0.1:2379"`},
			{"fleet.etcd.username", "must be set when fleet.etcd.password_file is set"},
		}},
		{"fleet ca over http", func(c *Config) { f := DefaultFleet(); f.Etcd.CAFile = "/ca"; f.Name = "a b"; c.Fleet = &f }, []Problem{
			{"fleet.etcd.ca_file", "is only used with https endpoints"},
			{"fleet.name", `must not contain spaces or control characters, got "a b"`},
		}},
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

// TestDiscoveryDefaults: an entry with only its name and type means the
// documented defaults.
func TestDiscoveryDefaults(t *testing.T) {
	c, err := Parse([]byte(`{"discovery": [{"dns": "_http._tcp.API.service.consul.", "type": "srv"},
		{"dns": "web.example", "type": "a", "port": 8080}]}`))
	require.NoError(t, err)
	want := DefaultDiscovery()
	want.DNS, want.Type = "_http._tcp.api.service.consul", "srv"
	require.Equal(t, want, c.Discovery[0])
	require.Equal(t, Discovery{DNS: "web.example", Type: "a", Port: 8080, Refresh: Duration(10 * time.Second),
		Scheme: "http", Protocol: "http1", Weight: 1}, c.Discovery[1])
	require.Equal(t, c, c.Clone())
}

func TestDiscoveryValidate(t *testing.T) {
	base := func() Discovery {
		d := DefaultDiscovery()
		d.DNS, d.Type = "_http._tcp.api.service.consul", "srv"
		return d
	}
	for _, tc := range []struct {
		name   string
		change func(d *Discovery)
		want   string // "": valid
	}{
		{"srv defaults", func(d *Discovery) {}, ""},
		{"a with port", func(d *Discovery) { d.Type, d.Port = "a", 8080 }, ""},
		{"v6 resolver", func(d *Discovery) { d.Resolver = "[::1]:8600" }, ""},
		{"refresh at the floor", func(d *Discovery) { d.Refresh = Duration(MinDiscoveryRefresh) }, ""},
		{"https h2 with tls options", func(d *Discovery) {
			d.Scheme, d.Protocol, d.CAFile, d.ServerName = "https", "h2", "ca.pem", "api.internal"
		}, ""},
		{"weight at the maximum", func(d *Discovery) { d.Weight = MaxWeight }, ""},
		{"no name", func(d *Discovery) { d.DNS = "" },
			`dns: must be a DNS name such as "_http._tcp.api.service.consul", got ""`},
		{"name with a space", func(d *Discovery) { d.DNS = "web example" },
			`dns: "web example" is not a DNS name (letters, digits, "-", "_" and "." only; international names go in their xn-- form)`},
		{"label too long", func(d *Discovery) { d.DNS = strings.Repeat("a", 64) + ".example" },
			`dns: "` + strings.Repeat("a", 61) + `..." has a label longer than 63 characters`},
		{"name too long", func(d *Discovery) { d.DNS = strings.Repeat("abcdefgh.", 29) },
			`dns: "` + strings.Repeat("abcdefgh.", 7)[:61] + `..." is longer than the 253 characters of a DNS name`},
		{"v6 literal", func(d *Discovery) { d.DNS = "::1" },
			`dns: "::1" is an IP address, not a name; list it under backends instead`},
		{"no type", func(d *Discovery) { d.Type = "" }, `type: must be one of srv, a, got ""`},
		{"a without port", func(d *Discovery) { d.Type = "a" },
			"port: is required for type a: A and AAAA records carry no port"},
		{"srv with port", func(d *Discovery) { d.Port = 80 },
			"port: must be left out for type srv: each SRV record carries its member's port"},
		{"resolver by name", func(d *Discovery) { d.Resolver = "consul:8600" },
			`resolver: "consul:8600" is not IP:port, as in "127.0.0.1:8600" or "[::1]:53" (empty means /etc/resolv.conf)`},
		{"negative refresh", func(d *Discovery) { d.Refresh = Duration(-time.Second) },
			`refresh: must be a positive duration such as "1s", got -1s`},
		{"h2 over http", func(d *Discovery) { d.Protocol = "h2" },
			"protocol: h2 needs scheme https; use h2c for cleartext HTTP/2"},
		{"unknown protocol", func(d *Discovery) { d.Protocol = "http3" },
			`protocol: must be one of http1, h2c, h2, got "http3"`},
		{"weight too high", func(d *Discovery) { d.Weight = MaxWeight + 1 },
			"weight: must be between 1 and 1000, got 1001"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := base()
			tc.change(&d)
			err := d.Validate()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tc.want)
		})
	}
}

func TestNormalizeDNSName(t *testing.T) {
	for in, want := range map[string]string{
		"Web.Example.":                  "web.example",
		"_http._tcp.api.service.consul": "_http._tcp.api.service.consul",
		"xn--bcher-kva.example":         "xn--bcher-kva.example",
		"localhost":                     "localhost",
	} {
		got, err := NormalizeDNSName(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
		again, err := NormalizeDNSName(got)
		require.NoError(t, err)
		require.Equal(t, got, again, "idempotent")
	}
	for _, bad := range []string{"", ".", ".web", "a..b", "bücher.example", "10.0.0.1", "a/b"} {
		_, err := NormalizeDNSName(bad)
		require.Error(t, err, bad)
	}
}
