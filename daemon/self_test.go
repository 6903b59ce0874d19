package daemon

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/internal/synth"
	"github.com/lbd/lbd/routing"
)

func TestIsListener(t *testing.T) {
	cases := []struct {
		backend, listen string
		self            bool
	}{
		{"http://127.0.0.1:3030", ":3030", true},
		{"http://localhost:3030", ":3030", true},
		{"http://127.0.0.2:3030", "0.0.0.0:3030", true},
		{"http://[::1]:3030", "[::]:3030", true},
		{"http://127.0.0.1:3031", ":3030", false},
		{"http://127.0.0.1:3030", "127.0.0.1:3030", true},
		{"http://localhost:3030", "127.0.0.1:3030", true},
		{"http://127.0.0.1:3030", "localhost:3030", true},
		{"https://127.0.0.1:3030", ":3030", true}, // the scheme does not change whose socket it is
		{"http://10.9.9.9:3030", "127.0.0.1:3030", false},
		{"http://127.0.0.1:3030", "10.9.9.9:3030", false},
		{"http://api.internal:3030", ":3030", false}, // names are not resolved: the Via check sees those
		{"http://127.0.0.1:0", ":0", false},
	}
	for _, c := range cases {
		var local func() []netip.Addr
		require.Equal(t, c.self, isListener(c.backend, c.listen, &local), "%s vs %s", c.backend, c.listen)
	}
	for _, a := range machineAddrs() { // an interface address reaches a listener on every address
		if !a.IsLoopback() && a.Is4() {
			var local func() []netip.Addr
			require.True(t, isListener("http://"+a.String()+":3030", ":3030", &local), a.String())
			require.False(t, isListener("http://"+a.String()+":3030", "127.0.0.1:3030", &local), a.String())
		}
	}
}

// freePort returns a loopback port the kernel just gave and took back.
func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// Item 8 of issue 19: lbd refuses to be its own backend, from every way in.
func TestOwnListenerIsRefusedAsABackend(t *testing.T) {
	bs := startBackends(t, synth.Knobs{Name: "a"})
	t.Run("config at start", func(t *testing.T) {
		addr := freePort(t)
		cfg := testConfig(bs, func(c *config.Config) {
			c.Listen = addr
			c.Backends = append(c.Backends, config.Backend{URL: "http://" + addr, Weight: 1, Protocol: "http1"})
		})
		_, err := New(Options{Config: cfg, Logger: slog.New(slog.DiscardHandler), Getenv: func(string) string { return "" }})
		require.ErrorIs(t, err, routing.ErrInvalid)
		require.ErrorContains(t, err, "own listener")
	})
	l := startLBD(t, bs, nil)
	t.Run("admin add", func(t *testing.T) {
		code, m := adminCall(t, l.adminURL, "POST", "/admin/backend/add?url="+l.url, "")
		require.Equal(t, http.StatusBadRequest, code)
		require.Contains(t, m["error"], "own listener")
		code, m = adminCall(t, l.adminURL, "POST", "/admin/backends", `{"url":"http://localhost:`+urlPort(t, l.url)+`"}`)
		require.Equal(t, http.StatusBadRequest, code, "%v", m)
	})
	t.Run("reload", func(t *testing.T) {
		next := testConfig(bs, func(c *config.Config) {
			c.Backends = append(c.Backends, config.Backend{URL: l.url, Weight: 1, Protocol: "http1"})
		})
		require.ErrorContains(t, l.reload(t, next), "own listener")
		require.Len(t, l.d.Table().Pools[0].Backends, 1, "nothing changed")
	})
	resp, _ := l.get(t, "/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

func urlPort(t *testing.T, u string) string {
	_, port, err := net.SplitHostPort(u[len("http://"):])
	require.NoError(t, err)
	return port
}

// A backend added while lbd listened elsewhere does not keep it from
// starting on that backend's address: the state file's entry is dropped.
func TestStateFileBackendThatBecameSelfIsDropped(t *testing.T) {
	bs := startBackends(t, synth.Knobs{Name: "a"})
	state := filepath.Join(t.TempDir(), "state.json")
	later := freePort(t)
	first := startDaemon(t, testConfig(bs, func(c *config.Config) { c.StateFile = state }))
	mustAdmin(t, "http://"+first.AdminAddr(), "POST", "/admin/backend/add?url=http://"+later, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, first.Shutdown(ctx))

	l := startLBD(t, bs, func(c *config.Config) { c.StateFile, c.Listen = state, later })
	require.Len(t, backendRows(t, l.adminURL), 1, "only the file's backend runs")
	resp, _ := l.get(t, "/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
}
