package proxy

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/backendactor"
	"github.com/lbd/lbd/scheduler"
)

type noPicker struct{}

func (noPicker) Picker() *scheduler.Picker { return nil }

func TestUpgradesAreRefusedOnceTheDrainBegins(t *testing.T) {
	h := New(Options{Scheduler: noPicker{}, Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.Equal(t, 0, h.DrainUpgrades(ctx), "nothing was open")

	r := httptest.NewRequest(http.MethodGet, "/ws", nil)
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Upgrade", "websocket")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	require.Equal(t, http.StatusServiceUnavailable, w.Code)
	require.Equal(t, "draining", w.Header().Get("X-Lbd-Reject"))
	require.NotEmpty(t, w.Header().Get("X-Request-Id"))
}

func testBackend() *backendactor.Handle {
	return backendactor.New(nil, backendactor.Config{URL: "http://127.0.0.1:1", SkipWarmup: true,
		Breaker: backendactor.BreakerConfig{FailureThreshold: 5, OpenFor: time.Second, HalfOpenProbes: 1},
		Rise:    1, Fall: 1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

// openUpgrade starts one upgraded connection that backend h accepted.
func openUpgrade(t *testing.T, u *upgrades, h *backendactor.Handle) (*upgradeConn, func()) {
	t.Helper()
	c, end, ok := u.start(context.Background())
	require.True(t, ok)
	if h != nil {
		(&reqState{upgrade: c}).upgraded(h, nil)
	}
	return c, end
}

func TestUpgradeWatcher(t *testing.T) {
	const limit = 10 * time.Second

	t.Run("shutdown: open connections get the drain timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			u := newUpgrades(UpgradeOptions{DrainTimeout: limit})
			c, end := openUpgrade(t, u, nil)
			start := time.Now()
			drained := make(chan int)
			go func() { drained <- u.drain(context.Background()) }()
			synctest.Wait()
			_, _, ok := u.start(context.Background())
			require.False(t, ok, "no new upgrade once draining")

			<-c.ctx.Done()
			require.Equal(t, limit, time.Since(start))
			end() // ReverseProxy returns once both sockets are closed
			require.Equal(t, 0, <-drained, "they ended within the timeout")
		})
	})

	t.Run("shutdown: the grace ends first", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			u := newUpgrades(UpgradeOptions{DrainTimeout: time.Hour})
			c, end := openUpgrade(t, u, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			start := time.Now()
			drained := make(chan int)
			go func() { drained <- u.drain(ctx) }()
			<-c.ctx.Done()
			require.Equal(t, 2*time.Second, time.Since(start))
			end()
			require.Equal(t, 1, <-drained, "one connection had to be closed")
		})
	})

	t.Run("backend drained: closed after the limit", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := testBackend()
			defer func() { h.Stop(); <-h.Done() }()
			u := newUpgrades(UpgradeOptions{DrainTimeout: limit})
			c, end := openUpgrade(t, u, h)
			defer end()
			require.NoError(t, h.Drain(context.Background(), "test drain"))
			start := time.Now()
			<-c.ctx.Done()
			waited := time.Since(start)
			require.GreaterOrEqual(t, waited, limit)
			require.LessOrEqual(t, waited, limit+u.times.Load().poll+100*time.Millisecond, "noticed within a poll (and the actor's tick)")
		})
	})

	t.Run("backend undrained in time: the connection stays", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := testBackend()
			defer func() { h.Stop(); <-h.Done() }()
			u := newUpgrades(UpgradeOptions{DrainTimeout: limit})
			c, end := openUpgrade(t, u, h)
			require.NoError(t, h.Drain(context.Background(), "test drain"))
			<-time.After(limit / 2)
			require.NoError(t, h.Undrain(context.Background(), "test undrain"))
			<-time.After(10 * limit)
			require.NoError(t, c.ctx.Err(), "still open")
			end()
			require.Error(t, c.ctx.Err(), "ended by its own close")
		})
	})

	t.Run("zero limit closes at once", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			u := newUpgrades(UpgradeOptions{})
			c, end := openUpgrade(t, u, nil)
			start := time.Now()
			go func() { <-c.ctx.Done(); end() }()
			require.Equal(t, 0, u.drain(context.Background()))
			require.Equal(t, time.Duration(0), time.Since(start))
		})
	})
}
