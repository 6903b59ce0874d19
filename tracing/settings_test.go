package tracing

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
)

func TestResolve(t *testing.T) {
	ratio := func(f float64) *float64 { return &f }
	def := Settings{URL: "http://localhost:4318/v1/traces", Protocol: "http/protobuf", SampleRatio: 1, ServiceName: "lbd", MaxQueue: DefaultMaxQueue}
	with := func(change func(*Settings)) Settings {
		s := def
		change(&s)
		return s
	}
	for _, tc := range []struct {
		name string
		cfg  *config.Tracing
		env  map[string]string
		want Settings
		on   bool
		err  string
	}{
		{name: "no section, no environment: off"},
		{name: "the environment alone names no endpoint: off", env: map[string]string{"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"}},
		{name: "an empty section is on with the defaults", cfg: &config.Tracing{}, want: def, on: true},
		{name: "OTEL_EXPORTER_OTLP_ENDPOINT turns it on, as a base URL",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"},
			want: with(func(s *Settings) { s.URL = "http://collector:4318/v1/traces" }), on: true},
		{name: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as it is, and wins",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://b/custom/path"},
			want: with(func(s *Settings) { s.URL = "https://b/custom/path" }), on: true},
		{name: "OTEL_TRACES_EXPORTER=otlp turns it on at the default endpoint", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, want: def, on: true},
		{name: "OTEL_SDK_DISABLED turns the environment's tracing off",
			env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_SDK_DISABLED": "TRUE"}},
		{name: "OTEL_TRACES_EXPORTER=none too", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_TRACES_EXPORTER": "none"}},
		{name: "the section wins over a disabled environment", cfg: &config.Tracing{}, env: map[string]string{"OTEL_SDK_DISABLED": "true"}, want: def, on: true},
		{name: "every field from the environment",
			cfg: &config.Tracing{},
			env: map[string]string{
				"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
				"OTEL_EXPORTER_OTLP_HEADERS": "api-key=s%20ecret, x=1", "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x=2",
				"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25",
				"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,service.name=edge", "OTEL_BSP_MAX_QUEUE_SIZE": "100",
			},
			want: Settings{URL: "http://collector:4317", Protocol: "grpc", Headers: map[string]string{"api-key": "s ecret", "x": "2"},
				SampleRatio: 0.25, ServiceName: "edge", MaxQueue: 100},
			on: true},
		{name: "every field of the section wins over the environment",
			cfg: &config.Tracing{Endpoint: "http://127.0.0.1:4318/base/", Protocol: "http/json", SampleRatio: ratio(0),
				ServiceName: "lbd-a", Headers: map[string]string{"x": "3"}},
			env: map[string]string{
				"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317",
				"OTEL_EXPORTER_OTLP_HEADERS": "api-key=k,x=1", "OTEL_TRACES_SAMPLER": "always_on", "OTEL_SERVICE_NAME": "other",
			},
			want: Settings{URL: "http://127.0.0.1:4318/base/v1/traces", Protocol: "http/json", Headers: map[string]string{"api-key": "k", "x": "3"},
				SampleRatio: 0, ServiceName: "lbd-a", MaxQueue: DefaultMaxQueue},
			on: true},
		{name: "grpc's default endpoint is 4317", cfg: &config.Tracing{Protocol: "grpc"},
			want: with(func(s *Settings) { s.Protocol, s.URL = "grpc", "http://localhost:4317" }), on: true},
		{name: "always_off samples no new trace", cfg: &config.Tracing{}, env: map[string]string{"OTEL_TRACES_SAMPLER": "always_off"},
			want: with(func(s *Settings) { s.SampleRatio = 0 }), on: true},
		{name: "OTEL_SERVICE_NAME before OTEL_RESOURCE_ATTRIBUTES", cfg: &config.Tracing{},
			env:  map[string]string{"OTEL_SERVICE_NAME": "a", "OTEL_RESOURCE_ATTRIBUTES": "service.name=b"},
			want: with(func(s *Settings) { s.ServiceName = "a" }), on: true},
		{name: "bad protocol", cfg: &config.Tracing{}, env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "thrift"},
			err: `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: must be one of http/protobuf, http/json, grpc, got "thrift"`},
		{name: "bad endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"},
			err: `OTEL_EXPORTER_OTLP_ENDPOINT: want an http or https URL such as "http://127.0.0.1:4318", got "collector:4318"`},
		{name: "bad headers", cfg: &config.Tracing{}, env: map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "novalue"},
			err: `OTEL_EXPORTER_OTLP_HEADERS: want key=value pairs separated by commas, got "novalue"`},
		{name: "bad sampler", cfg: &config.Tracing{}, env: map[string]string{"OTEL_TRACES_SAMPLER": "jaeger_remote"},
			err: `OTEL_TRACES_SAMPLER: lbd knows always_on, always_off, traceidratio and their parentbased_ forms, got "jaeger_remote"`},
		{name: "bad ratio", cfg: &config.Tracing{}, env: map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"},
			err: `OTEL_TRACES_SAMPLER_ARG: want a ratio between 0 and 1, got "2"`},
		{name: "bad queue", cfg: &config.Tracing{}, env: map[string]string{"OTEL_BSP_MAX_QUEUE_SIZE": "0"},
			err: `OTEL_BSP_MAX_QUEUE_SIZE: want a whole number of spans of at least 1, got "0"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, on, err := Resolve(tc.cfg, func(k string) string { return tc.env[k] })
			if tc.err != "" {
				require.EqualError(t, err, tc.err)
				require.False(t, on)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.on, on)
			require.Equal(t, tc.want, s)
		})
	}
}
