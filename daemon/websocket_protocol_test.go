package daemon

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
)

// wsBackend is a WebSocket server (github.com/coder/websocket) that greets
// each client with its name, echoes every message with its type, closes with
// 4001 when told "close-me", and reports how each connection was closed.
type wsBackend struct {
	name   string
	srv    *httptest.Server
	closes chan websocket.CloseError
}

func startWSBackend(t *testing.T, name string) *wsBackend {
	t.Helper()
	b := &wsBackend{name: name, closes: make(chan websocket.CloseError, 8)}
	b.srv = httptest.NewServer(http.HandlerFunc(b.serve))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *wsBackend) serve(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	ctx := context.Background()
	if err := c.Write(ctx, websocket.MessageText, []byte("hello from "+b.name)); err != nil {
		return
	}
	for {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			if !errors.As(err, &ce) {
				ce = websocket.CloseError{Code: -1, Reason: err.Error()}
			}
			b.closes <- ce
			return
		}
		if string(msg) == "close-me" {
			_ = c.Close(4001, "backend says bye")
			return
		}
		if err := c.Write(ctx, typ, msg); err != nil {
			return
		}
	}
}

// wsDial opens a WebSocket through lbd and reads the backend's greeting.
func wsDial(t *testing.T, l *testLBD) (*websocket.Conn, string) {
	t.Helper()
	c, resp, err := websocket.Dial(callCtx(t), "ws://"+l.d.DataAddr()+"/ws", nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	t.Cleanup(func() { _ = c.CloseNow() })
	c.SetReadLimit(1 << 20)
	typ, msg, err := c.Read(callCtx(t))
	require.NoError(t, err)
	require.Equal(t, websocket.MessageText, typ)
	return c, strings.TrimPrefix(string(msg), "hello from ")
}

func wsEcho(t *testing.T, c *websocket.Conn, typ websocket.MessageType, msg string) {
	t.Helper()
	require.NoError(t, c.Write(callCtx(t), typ, []byte(msg)))
	gotTyp, got, err := c.Read(callCtx(t))
	require.NoError(t, err)
	require.Equal(t, typ, gotTyp)
	require.Equal(t, msg, string(got))
}

// wsClosedByLBD waits (bounded) for the connection to end without a close
// frame, the way lbd ends one: by closing both sockets.
func wsClosedByLBD(t *testing.T, c *websocket.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, _, err := c.Read(ctx)
	require.Error(t, err)
	require.NoError(t, ctx.Err(), "lbd should have closed the connection")
	require.Equal(t, websocket.StatusCode(-1), websocket.CloseStatus(err), "no close frame: %v", err)
}

func startWSLBD(t *testing.T, drain time.Duration, backends ...*wsBackend) *testLBD {
	t.Helper()
	return startLBD(t, nil, func(c *config.Config) {
		c.WebSocket.DrainTimeout = config.Duration(drain)
		for _, b := range backends {
			c.Backends = append(c.Backends, config.Backend{URL: b.srv.URL, Weight: 1, Protocol: "http1"})
		}
	})
}

func TestWebSocketEchoesBothWaysAndKeepsCloseCodes(t *testing.T) {
	b := startWSBackend(t, "a")
	l := startWSLBD(t, time.Second, b)
	h := l.sched().Lookup(b.srv.URL)
	require.NotNil(t, h)

	c, name := wsDial(t, l)
	require.Equal(t, "a", name, "the backend spoke first, through lbd")
	wsEcho(t, c, websocket.MessageText, "ping")
	wsEcho(t, c, websocket.MessageBinary, "\x00\x01\x02binary")
	wsEcho(t, c, websocket.MessageText, strings.Repeat("large frame ", 50_000))
	require.Equal(t, int64(1), h.Inflight(), "an open WebSocket holds its backend slot")

	require.NoError(t, c.Close(4000, "client says bye"))
	require.Equal(t, websocket.CloseError{Code: 4000, Reason: "client says bye"}, <-b.closes, "the client's close code reached the backend")
	require.Eventually(t, func() bool { return h.Inflight() == 0 }, 10*time.Second, 5*time.Millisecond, "the slot is released when the connection ends")

	c, _ = wsDial(t, l)
	require.NoError(t, c.Write(callCtx(t), websocket.MessageText, []byte("close-me")))
	_, _, err := c.Read(callCtx(t))
	var ce websocket.CloseError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, websocket.CloseError{Code: 4001, Reason: "backend says bye"}, ce, "the backend's close code reached the client")
	require.Eventually(t, func() bool { return h.Inflight() == 0 }, 10*time.Second, 5*time.Millisecond)
}

func TestWebSocketOnADrainedBackendRunsOutItsLimit(t *testing.T) {
	a, b := startWSBackend(t, "a"), startWSBackend(t, "b")
	l := startWSLBD(t, time.Second, a, b)
	require.NoError(t, l.sched().Lookup(b.srv.URL).Drain(callCtx(t), "test drain"))
	ha := l.sched().Lookup(a.srv.URL)

	c, name := wsDial(t, l)
	require.Equal(t, "a", name)
	require.NoError(t, ha.Drain(callCtx(t), "test drain"))

	wsEcho(t, c, websocket.MessageText, "still here after the drain")
	resp, _ := l.get(t, "/ws", "Connection", "Upgrade", "Upgrade", "websocket")
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "no new WebSocket on drained backends")
	require.Equal(t, "no-backend", resp.Header.Get("X-Lbd-Reject"))

	wsClosedByLBD(t, c)
	require.Eventually(t, func() bool { return ha.Inflight() == 0 }, 10*time.Second, 5*time.Millisecond)
}

func TestWebSocketShutdownDrain(t *testing.T) {
	cases := []struct {
		name  string
		limit time.Duration // websocket.drain_timeout
		grace time.Duration // the shutdown's deadline
	}{
		{"the drain timeout ends it", 500 * time.Millisecond, time.Minute},
		{"the shutdown grace ends it first", time.Hour, 300 * time.Millisecond},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := startWSBackend(t, "a")
			app, addr, shutdown := startBareApp(t, func(cfg *config.Config) {
				cfg.WebSocket.DrainTimeout = config.Duration(c.limit)
				cfg.Backends = []config.Backend{{URL: b.srv.URL, Weight: 1, Protocol: "http1"}}
			})
			l := &testLBD{d: app, url: "http://" + addr}
			ws, _ := wsDial(t, l)

			ctx, cancel := context.WithTimeout(context.Background(), c.grace)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- shutdown(ctx) }()
			require.Eventually(t, func() bool {
				conn, err := net.Dial("tcp", addr)
				if err == nil {
					conn.Close()
				}
				return err != nil
			}, 10*time.Second, 5*time.Millisecond, "the listener closes")
			wsEcho(t, ws, websocket.MessageText, "still served while lbd drains")
			wsClosedByLBD(t, ws)
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("Shutdown did not return")
			}
			require.Equal(t, int64(0), l.sched().Lookup(b.srv.URL).Inflight())
		})
	}
}

// startBareApp starts an App whose Shutdown the test calls; the returned
// shutdown runs once, and at cleanup if the test did not get to it.
func startBareApp(t testing.TB, mutate func(*config.Config)) (*Daemon, string, func(context.Context) error) {
	t.Helper()
	cfg := config.Default()
	cfg.Listen, cfg.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.AccessLog.Mode = "off"
	cfg.Warmup.Duration = 0
	mutate(cfg)
	require.NoError(t, cfg.Validate())
	app := startDaemon(t, cfg)
	var once sync.Once
	var shutErr error
	shutdown := func(ctx context.Context) error {
		once.Do(func() { shutErr = app.Shutdown(ctx) })
		return shutErr
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = shutdown(ctx)
	})
	return app, app.DataAddr(), shutdown
}

// TestWebSocketsLeaveAdmissionOnceUpgraded: an open WebSocket holds its
// backend's slot, but not a place under admission's in-flight cap (or the
// adaptive limit), which bound requests: more WebSockets than the cap stay
// open and ordinary requests still pass.
func TestWebSocketsLeaveAdmissionOnceUpgraded(t *testing.T) {
	b := startWSBackend(t, "a")
	l := startLBD(t, nil, func(c *config.Config) {
		c.Admission.MaxInflight = 2
		c.AIMD.Enabled = false
		c.Backends = []config.Backend{{URL: b.srv.URL, Weight: 1, Protocol: "http1"}}
	})
	var conns []*websocket.Conn
	for range 4 {
		c, _ := wsDial(t, l)
		conns = append(conns, c)
	}
	resp, _ := l.get(t, "/")
	require.Equal(t, http.StatusUpgradeRequired, resp.StatusCode, "the backend's own answer to a plain GET, not lbd's 503")
	for _, c := range conns {
		wsEcho(t, c, websocket.MessageText, "still open")
	}
	require.Equal(t, int64(4), l.sched().Lookup(b.srv.URL).Inflight(), "each holds its backend slot")
}
