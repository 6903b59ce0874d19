package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/cmd/internal/synth"
	"github.com/lbd/lbd/config"
)

// testLBD is one lbd with its synthetic backends, all on 127.0.0.1:0.
type testLBD struct {
	app      *App
	url      string // data plane, "http://127.0.0.1:PORT"
	adminURL string
	backends []*synth.Running
}

// startBackends starts synthetic backends with the given knobs.
func startBackends(t testing.TB, knobs ...synth.Knobs) []*synth.Running {
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

// startLBD runs an App over the backends; mutate adjusts the config first.
func startLBD(t testing.TB, backends []*synth.Running, mutate func(*config.Config)) *testLBD {
	t.Helper()
	cfg := config.Default()
	cfg.Listen, cfg.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.AccessLog.Mode = "off"
	cfg.Warmup.Duration = 0
	for _, b := range backends {
		cfg.Backends = append(cfg.Backends, config.Backend{URL: b.URL(), Weight: 1, Protocol: "http1"})
	}
	if mutate != nil {
		mutate(cfg)
	}
	require.NoError(t, cfg.Validate())
	app, err := NewApp(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	require.NoError(t, app.Start())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, app.Shutdown(ctx))
	})
	return &testLBD{app: app, url: "http://" + app.DataAddr(), adminURL: "http://" + app.AdminAddr(), backends: backends}
}

// get sends one request through the proxy and returns the response with its body read.
func (l *testLBD) get(t *testing.T, path string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, l.url+path, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

// spread sends n sequential GETs and counts responses by X-Backend.
func (l *testLBD) spread(t *testing.T, n int) map[string]int {
	t.Helper()
	m := map[string]int{}
	for range n {
		resp, _ := l.get(t, "/")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		m[resp.Header.Get("X-Backend")]++
	}
	return m
}
