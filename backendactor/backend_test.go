package backendactor

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/lbd/lbd/actor"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testConfig() Config {
	return Config{
		URL: "http://127.0.0.1:1", Weight: 2,
		Breaker: BreakerConfig{FailureThreshold: 3, OpenFor: 10 * time.Second, HalfOpenProbes: 1},
		Rise:    2, Fall: 2, Warmup: 30 * time.Second, WarmupMinPercent: 10, SkipWarmup: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func stats(t *testing.T, h *Handle) Stats {
	t.Helper()
	s, err := h.Stats(context.Background())
	require.NoError(t, err)
	return s
}

func TestCapRefusesOverTheCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := testConfig()
		c.MaxInflight = 2
		h := New(nil, c)
		defer h.Stop()
		require.True(t, h.Acquire())
		require.True(t, h.Acquire())
		require.False(t, h.Acquire(), "third request is over the cap of 2")
		require.EqualValues(t, 2, h.Inflight(), "a refusal leaves no trace")
		h.Release(time.Millisecond, Success)
		require.True(t, h.Acquire(), "a released slot is free again")

		require.NoError(t, h.SetCap(context.Background(), 0))
		for range 10 {
			require.True(t, h.Acquire(), "cap 0 means none")
		}
	})
}

func TestBreakerOpensOnConsecutiveFailuresAndRecovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var changes atomic.Int32
		c := testConfig()
		c.OnChange = func(*Handle) { changes.Add(1) }
		h := New(nil, c)
		defer h.Stop()

		for range 3 {
			require.True(t, h.Acquire())
			h.Release(time.Millisecond, GatewayError)
		}
		synctest.Wait() // the third failure woke the actor; it has folded
		require.Equal(t, Open, h.Snapshot().Breaker)
		require.False(t, h.Snapshot().Eligible)
		require.False(t, h.Acquire(), "an open breaker admits nothing")
		require.EqualValues(t, 1, changes.Load(), "the scheduler was told")

		<-time.After(10 * time.Second) // the bubble's clock: open_for passes
		synctest.Wait()
		require.Equal(t, HalfOpen, h.Snapshot().Breaker)
		require.True(t, h.Acquire(), "one probe")
		require.False(t, h.Acquire(), "half_open_probes=1: the second waits")
		h.Release(2*time.Millisecond, Success)
		synctest.Wait()
		require.Equal(t, Closed, h.Snapshot().Breaker, "the probe's success closed it")
		require.Equal(t, StateWarming, h.Snapshot().State, "recovery ramps up")
		require.InDelta(t, 0.1, h.Snapshot().WarmFactor, 0.01)
		require.Equal(t, 1, stats(t, h).BreakerTrips)
	})
}

func TestWarmupRampThroughTheActor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := testConfig()
		c.SkipWarmup = false
		h := New(nil, c)
		defer h.Stop()
		require.Equal(t, StateWarming, h.Snapshot().State)
		require.InDelta(t, 0.2, h.Snapshot().EffectiveWeight(), 1e-9, "10% of weight 2")
		<-time.After(15*time.Second + 50*time.Millisecond)
		synctest.Wait()
		require.InDelta(t, 0.55, h.Snapshot().WarmFactor, 0.01)
		require.InDelta(t, 15000, stats(t, h).WarmupRemainingMs, 100)
		<-time.After(15 * time.Second)
		synctest.Wait()
		require.Equal(t, StateHealthy, h.Snapshot().State)
		require.Equal(t, 1.0, h.Snapshot().WarmFactor)

		require.NoError(t, h.WarmReset(context.Background()))
		require.Equal(t, StateWarming, h.Snapshot().State)
	})
}

func TestEWMAFromReleasedSamples(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := New(nil, testConfig())
		defer h.Stop()
		// Act half a tick out of phase with the actor's 100ms ticks: a
		// release at the very instant of a tick may land in either window.
		<-time.After(50 * time.Millisecond)
		for _, d := range []time.Duration{10, 10, 50} {
			require.True(t, h.Acquire())
			h.Release(d*time.Millisecond, Success)
		}
		<-time.After(100 * time.Millisecond)
		synctest.Wait()
		require.Equal(t, 70*time.Millisecond/3, h.Snapshot().EWMA, "the window's mean")
		for range 30 {
			require.True(t, h.Acquire())
			h.Release(10*time.Millisecond, Success)
			<-time.After(100 * time.Millisecond)
		}
		require.True(t, h.Acquire())
		h.Release(200*time.Millisecond, Success)
		<-time.After(100 * time.Millisecond)
		synctest.Wait()
		require.Equal(t, 200*time.Millisecond, h.Snapshot().EWMA, "a slow window takes over at once")
		for range 10 {
			require.True(t, h.Acquire())
			h.Release(10*time.Millisecond, Success)
		}
		synctest.Wait()
		<-time.After(100 * time.Millisecond)
		synctest.Wait()
		require.Less(t, h.Snapshot().EWMA, 200*time.Millisecond, "and decays")
		require.EqualValues(t, 44, stats(t, h).Requests)
	})
}

func TestHealthDrainEject(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := New(nil, testConfig())
		defer h.Stop()
		ctx := context.Background()
		for range 2 {
			require.NoError(t, h.HealthResult(ctx, false, time.Now(), "status 500"))
		}
		synctest.Wait()
		require.Equal(t, StateUnhealthy, h.Snapshot().State)
		require.False(t, h.Acquire())
		for range 2 {
			require.NoError(t, h.HealthResult(ctx, true, time.Now(), "ok"))
		}
		synctest.Wait()
		require.True(t, h.Snapshot().Eligible)

		require.NoError(t, h.Drain(ctx, "test drain"))
		require.Equal(t, StateDraining, h.Snapshot().State)
		require.False(t, h.Acquire())
		require.NoError(t, h.Undrain(ctx, "test undrain"))
		require.True(t, h.Acquire())
		h.Release(time.Millisecond, Success)

		require.NoError(t, h.Eject(ctx, time.Now().Add(30*time.Second), "consecutive 5xx", "test detail"))
		s := stats(t, h)
		require.Equal(t, StateEjected, s.State)
		require.Equal(t, "consecutive 5xx", s.EjectReason)
		require.False(t, h.Acquire())
		<-time.After(30 * time.Second)
		synctest.Wait()
		require.True(t, h.Snapshot().Eligible, "an ejection ends by itself")
	})
}

func TestRetireWaitsForInflight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := actor.NewRegistry()
		h := New(reg, testConfig())
		require.True(t, h.Acquire())
		require.NoError(t, h.Retire(context.Background(), time.Now().Add(time.Minute), "test remove"))
		require.False(t, h.Acquire(), "retiring drains")
		<-time.After(time.Second)
		synctest.Wait()
		require.Equal(t, 1, reg.Len(), "still serving its last request")
		h.Release(time.Millisecond, Success)
		<-time.After(100 * time.Millisecond)
		<-h.Done()
		require.Equal(t, 0, reg.Len())
	})
}

func TestRestartKeepsPublishedState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := actor.NewRegistry()
		h := New(reg, testConfig())
		defer h.Stop()
		require.NoError(t, h.Drain(context.Background(), "test drain"))

		// A reply on a closed channel panics inside the handler, after the
		// ejection was half applied: the supervisor must restore the published state.
		closed := make(chan error, 1)
		close(closed)
		require.NoError(t, h.Ref().Tell(eject{until: time.Now().Add(time.Hour), reason: "x", ack: closed}))
		s := stats(t, h)
		require.Equal(t, StateDraining, s.State, "state rebuilt from the last snapshot")
		require.Empty(t, s.EjectReason, "the half-done change is gone")
		require.Equal(t, uint64(1), reg.Snapshot()[0].Restarts)
	})
}
