package tracing

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/lbd/lbd/config"
)

// Settings are the tracing settings in force once the config file and the
// environment are combined. Two equal Settings build equal providers, so a
// reload that leaves them alone keeps the running one.
type Settings struct {
	// URL is where spans go: the full OTLP/HTTP URL (…/v1/traces), or the
	// collector's URL for gRPC (http means without TLS).
	URL         string
	Protocol    string // one of config.TracingProtocols
	Headers     map[string]string
	SampleRatio float64
	ServiceName string
	// MaxQueue bounds the spans waiting for export (OTEL_BSP_MAX_QUEUE_SIZE):
	// beyond it spans are dropped and counted.
	MaxQueue int
}

// DefaultMaxQueue is the export queue's bound without OTEL_BSP_MAX_QUEUE_SIZE
// (the SDK's own default).
const DefaultMaxQueue = 2048

// Resolve combines the tracing section with the OTEL_* environment, read
// through getenv. on is false when tracing is off: there is no section and
// the environment names no OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT,
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) nor OTEL_TRACES_EXPORTER=otlp, or it
// turns the SDK off (OTEL_SDK_DISABLED=true, OTEL_TRACES_EXPORTER=none). A
// section is on whatever the environment says: the file wins. Each field the
// section leaves empty takes its environment variable, then lbd's default. A
// variable that does not parse is an error naming it.
func Resolve(c *config.Tracing, getenv func(string) string) (s Settings, on bool, err error) {
	env := func(name string) string { return strings.TrimSpace(getenv(name)) }
	if c == nil {
		exporter := strings.ToLower(env("OTEL_TRACES_EXPORTER"))
		named := env("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" || exporter == "otlp"
		if !named || strings.EqualFold(env("OTEL_SDK_DISABLED"), "true") || exporter == "none" {
			return Settings{}, false, nil
		}
		c = &config.Tracing{}
	}
	if s.Protocol, err = protocol(c.Protocol, env); err != nil {
		return Settings{}, false, err
	}
	if s.URL, err = endpointURL(c.Endpoint, s.Protocol, env); err != nil {
		return Settings{}, false, err
	}
	if s.Headers, err = headers(c.Headers, env); err != nil {
		return Settings{}, false, err
	}
	if c.SampleRatio != nil {
		s.SampleRatio = *c.SampleRatio
	} else if s.SampleRatio, err = envRatio(env); err != nil {
		return Settings{}, false, err
	}
	s.ServiceName = serviceName(c.ServiceName, env)
	s.MaxQueue = DefaultMaxQueue
	if v := env("OTEL_BSP_MAX_QUEUE_SIZE"); v != "" {
		if s.MaxQueue, err = strconv.Atoi(v); err != nil || s.MaxQueue < 1 {
			return Settings{}, false, fmt.Errorf("OTEL_BSP_MAX_QUEUE_SIZE: want a whole number of spans of at least 1, got %q", v)
		}
	}
	return s, true, nil
}

func protocol(p string, env func(string) string) (string, error) {
	if p != "" {
		return p, nil // validated with the config
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if v := env(name); v != "" {
			if !slices.Contains(config.TracingProtocols, v) {
				return "", fmt.Errorf("%s: must be one of %s, got %q", name, strings.Join(config.TracingProtocols, ", "), v)
			}
			return v, nil
		}
	}
	return config.DefaultTracingProtocol, nil
}

// endpointURL is where the exporter sends: the section's base URL, else
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as it is (the specification's rule
// for the per-signal variable), else OTEL_EXPORTER_OTLP_ENDPOINT as a base,
// else the default for the protocol. Over HTTP a base URL gets /v1/traces.
func endpointURL(base, protocol string, env func(string) string) (string, error) {
	full := false
	if base == "" {
		if v := env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); v != "" {
			if err := checkURL("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", v); err != nil {
				return "", err
			}
			base, full = v, true
		} else if v := env("OTEL_EXPORTER_OTLP_ENDPOINT"); v != "" {
			if err := checkURL("OTEL_EXPORTER_OTLP_ENDPOINT", v); err != nil {
				return "", err
			}
			base = v
		}
	}
	if base == "" {
		base = config.DefaultTracingEndpoint
		if protocol == "grpc" {
			base = config.DefaultTracingEndpointGRPC
		}
	}
	if full || protocol == "grpc" {
		return base, nil
	}
	return strings.TrimSuffix(base, "/") + "/v1/traces", nil
}

func checkURL(name, v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s: want an http or https URL such as \"http://127.0.0.1:4318\", got %q", name, v)
	}
	return nil
}

// headers are OTEL_EXPORTER_OTLP_HEADERS, then _TRACES_HEADERS, then the
// section's, each overriding the one before by name: a secret can stay in
// the environment while the file adds the rest.
func headers(own map[string]string, env func(string) string) (map[string]string, error) {
	out := map[string]string{}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"} {
		v := env(name)
		if v == "" {
			continue
		}
		for pair := range strings.SplitSeq(v, ",") {
			k, val, ok := strings.Cut(pair, "=")
			k = strings.TrimSpace(k)
			if !ok || k == "" {
				return nil, fmt.Errorf("%s: want key=value pairs separated by commas, got %q", name, pair)
			}
			dec, err := url.PathUnescape(strings.TrimSpace(val))
			if err != nil {
				return nil, fmt.Errorf("%s: the value of %q is not URL-encoded: %v", name, k, err)
			}
			out[k] = dec
		}
	}
	maps.Copy(out, own)
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// envRatio reads OTEL_TRACES_SAMPLER and its argument. lbd always keeps a
// sampled caller's decision (parent-based sampling), so the samplers map to
// the ratio applied to new traces: always_on 1, always_off 0,
// traceidratio the argument (1 when absent, as the specification says).
func envRatio(env func(string) string) (float64, error) {
	name := strings.ToLower(env("OTEL_TRACES_SAMPLER"))
	switch name {
	case "", "always_on", "parentbased_always_on":
		return config.DefaultTracingSampleRatio, nil
	case "always_off", "parentbased_always_off":
		return 0, nil
	case "traceidratio", "parentbased_traceidratio":
		arg := env("OTEL_TRACES_SAMPLER_ARG")
		if arg == "" {
			return 1, nil
		}
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || !(r >= 0 && r <= 1) {
			return 0, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG: want a ratio between 0 and 1, got %q", arg)
		}
		return r, nil
	}
	return 0, fmt.Errorf("OTEL_TRACES_SAMPLER: lbd knows always_on, always_off, traceidratio and their parentbased_ forms, got %q", name)
}

// serviceName is the section's, OTEL_SERVICE_NAME, service.name in
// OTEL_RESOURCE_ATTRIBUTES, or "lbd".
func serviceName(own string, env func(string) string) string {
	if own != "" {
		return own
	}
	if v := env("OTEL_SERVICE_NAME"); v != "" {
		return v
	}
	for pair := range strings.SplitSeq(env("OTEL_RESOURCE_ATTRIBUTES"), ",") {
		if k, v, ok := strings.Cut(pair, "="); ok && strings.TrimSpace(k) == "service.name" {
			if dec, err := url.PathUnescape(strings.TrimSpace(v)); err == nil && dec != "" {
				return dec
			}
		}
	}
	return config.DefaultTracingService
}
