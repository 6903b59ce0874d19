package config

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTracingSection(t *testing.T) {
	c, err := Parse([]byte(`{}`))
	require.NoError(t, err)
	require.Nil(t, c.Tracing, "no section: tracing is left to the environment")

	c, err = Parse([]byte(`{"tracing": {}}`))
	require.NoError(t, err)
	require.Equal(t, &Tracing{}, c.Tracing, "an empty section is on, every field from the environment or the defaults")

	c, err = Parse([]byte(`{"tracing": {"sample_ratio": 0, "protocol": "grpc", "endpoint": "http://127.0.0.1:4317/base"}}`))
	require.NoError(t, err)
	require.NotNil(t, c.Tracing.SampleRatio, "0 is a ratio, not an absent one")
	require.Equal(t, 0.0, *c.Tracing.SampleRatio)

	_, err = Parse([]byte(`{"tracing": {"sample_rate": 0.1}}`))
	require.EqualError(t, err, `tracing.sample_rate: unknown key (did you mean "sample_ratio"?)`)
	_, err = Parse([]byte(`{"tracing": {"headers": {"a": "1", "a": "2"}}}`))
	require.EqualError(t, err, `tracing.headers.a: given twice; each name may appear once`)
	_, err = Parse([]byte(`{"tracing": {"endpoint": "http://collector:4318/?x=1"}}`))
	require.EqualError(t, err, `tracing.endpoint: is a base URL and takes no query or fragment, got "http://collector:4318/?x=1"`)
	_, err = Parse([]byte(`{"tracing": {"endpoint": "http:///v1"}}`))
	require.EqualError(t, err, `tracing.endpoint: needs a host, as in "http://127.0.0.1:4318", got "http:///v1"`)
}

// TestDiffRedactsTracingHeaders: a reload plan (POST /admin/reload) lists a
// change of an exporter header by path without showing its value.
func TestDiffRedactsTracingHeaders(t *testing.T) {
	parse := func(s string) *Config {
		c, err := Parse([]byte(s))
		require.NoError(t, err)
		return c
	}
	none := parse(`{}`)
	a := parse(`{"tracing": {"headers": {"Authorization": "Bearer old"}}}`)
	b := parse(`{"tracing": {"headers": {"Authorization": "Bearer new"}, "service_name": "x"}}`)
	c := parse(`{"tracing": {"headers": {"Authorization": "Bearer new", "X-Key": "k"}}}`)

	require.Equal(t, []SettingChange{
		{Path: "tracing.headers.Authorization", From: Redacted, To: Redacted},
		{Path: "tracing.service_name", From: "", To: "x"},
	}, Diff(a, b))
	require.Equal(t, []SettingChange{
		{Path: "tracing.headers.X-Key", From: nil, To: Redacted},
		{Path: "tracing.service_name", From: "x", To: ""},
	}, Diff(b, c))
	on := Diff(none, c)
	require.Len(t, on, 1)
	require.Equal(t, "tracing", on[0].Path)
	require.Nil(t, on[0].From)
	require.Equal(t, map[string]any{"Authorization": Redacted, "X-Key": Redacted}, on[0].To.(map[string]any)["headers"])
	require.Equal(t, "Bearer new", c.Tracing.Headers["Authorization"], "the config itself is untouched")
	for _, ch := range append(Diff(a, b), Diff(c, none)...) {
		require.NotContains(t, fmt.Sprint(ch.From, ch.To), "Bearer")
	}
}
