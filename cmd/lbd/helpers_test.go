package main

import (
	"encoding/json"
	"net/http"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/internal/synth"
)

// startBackends starts synthetic backends on loopback for the test.
func startBackends(t *testing.T, knobs ...synth.Knobs) []*synth.Running {
	t.Helper()
	var out []*synth.Running
	for _, k := range knobs {
		r, err := synth.Start("127.0.0.1:0", k, synth.WithSeed(1))
		require.NoError(t, err)
		t.Cleanup(func() { _ = r.Close() })
		out = append(out, r)
	}
	return out
}

// writeConfig writes a config over the backends, with both listeners on
// kernel-chosen loopback ports, to path.
func writeConfig(t *testing.T, path string, bs []*synth.Running) {
	t.Helper()
	cfg := config.Default()
	cfg.Listen, cfg.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.AccessLog.Mode = "off"
	for _, b := range bs {
		cfg.Backends = append(cfg.Backends, config.Backend{URL: b.URL(), Weight: 1, Protocol: "http1"})
	}
	data, err := json.Marshal(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, data, 0o600))
}

// getJSON GETs url and decodes its JSON answer.
func getJSON(t *testing.T, url string) map[string]any {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	var m map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
	return m
}
