package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/internal/synth"
	"github.com/lbd/lbd/scheduler"
)

// testLBD is one lbd with its synthetic backends, all on 127.0.0.1:0.
type testLBD struct {
	d        *Daemon
	file     atomic.Pointer[string] // the config file Reload reads (reloadFile)
	url      string                 // data plane, "http://127.0.0.1:PORT"
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
	return runLBD(t, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), backends)
}

// runLBD runs a Daemon over cfg until the test ends.
func runLBD(t testing.TB, cfg *config.Config, log *slog.Logger, backends []*synth.Running) *testLBD {
	t.Helper()
	l := &testLBD{backends: backends}
	load := func() (*config.Config, error) {
		p := l.file.Load()
		if p == nil {
			return nil, errors.New("no config file")
		}
		return config.Load(*p)
	}
	d, err := New(Options{Config: cfg, Load: load, Logger: log, Getenv: os.Getenv})
	require.NoError(t, err)
	require.NoError(t, d.Start())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, d.Shutdown(ctx))
	})
	l.d, l.url, l.adminURL = d, "http://"+d.DataAddr(), "http://"+d.AdminAddr()
	return l
}

// reloadFile reloads from the config file at path, as SIGHUP does.
func (l *testLBD) reloadFile(t testing.TB, path string) (*ReloadPlan, error) {
	t.Helper()
	l.file.Store(&path)
	return l.d.Reload(context.Background(), false)
}

// startDaemon starts a Daemon over cfg that the test shuts down itself.
func startDaemon(t testing.TB, cfg *config.Config) *Daemon {
	t.Helper()
	d, err := New(Options{Config: cfg, Logger: slog.New(slog.DiscardHandler), Getenv: func(string) string { return "" }})
	require.NoError(t, err)
	require.NoError(t, d.Start())
	return d
}

// sched returns a pool's scheduler ("default" without a name).
func (l *testLBD) sched(pool ...string) *scheduler.Scheduler {
	name := config.DefaultPool
	if len(pool) > 0 {
		name = pool[0]
	}
	s, ok := l.d.Scheduler(name)
	if !ok {
		panic("no pool " + name)
	}
	return s
}

// reload applies cfg as a reload of the file does.
func (l *testLBD) reload(t testing.TB, cfg *config.Config) error {
	t.Helper()
	_, err := l.d.ReloadConfig(context.Background(), cfg, false)
	return err
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
