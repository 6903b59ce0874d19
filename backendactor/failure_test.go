package backendactor

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/actor"
)

func TestHealthPendingFirstProbeDecides(t *testing.T) {
	cases := []struct {
		name  string
		seq   []bool
		wants []bool
	}{
		{"a good first probe brings a new backend up at once", []bool{true}, []bool{true}},
		{"a bad first probe: then rise good ones are needed", []bool{false, true, true}, []bool{false, false, true}},
		{"only the first probe is special", []bool{true, false, false, false, true}, []bool{true, true, true, false, false}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := Health{Pending: true}
			for i, ok := range c.seq {
				h = h.Next(ok, 2, 3, t0, "")
				require.Equal(t, c.wants[i], h.Up, "probe %d", i)
				require.False(t, h.Pending)
			}
		})
	}
}

func TestCountersFollowEnvoysRuns(t *testing.T) {
	cases := []struct {
		name        string
		outcomes    []Outcome
		c5xx, cgate int64
		failures    uint64
	}{
		{"5xx responses", []Outcome{ServerError, ServerError, ServerError}, 3, 0, 3},
		{"gateway failures count in both runs", []Outcome{GatewayError, GatewayError}, 2, 2, 2},
		{"a 5xx breaks the gateway run, not the 5xx run", []Outcome{GatewayError, GatewayError, ServerError, GatewayError}, 4, 1, 4},
		{"a success ends both", []Outcome{GatewayError, ServerError, Success, GatewayError}, 1, 1, 3},
		{"a client that went away says nothing", []Outcome{ServerError, Canceled, ServerError}, 2, 0, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := testConfig()
				cfg.Breaker.FailureThreshold = 100
				h := New(nil, cfg)
				defer h.Stop()
				for _, o := range c.outcomes {
					require.True(t, h.Acquire())
					h.Release(time.Millisecond, o)
				}
				got := h.Counters()
				require.Equal(t, c.c5xx, got.Consecutive5xx)
				require.Equal(t, c.cgate, got.ConsecutiveGateway)
				require.Equal(t, c.failures, got.Failures)
			})
		})
	}
}

func TestEjectionResetsTheOutlierRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.Breaker.FailureThreshold = 100 // the breaker stays out of it
		cfg.SkipWarmup = true
		h := New(nil, cfg)
		defer h.Stop()
		ctx := context.Background()

		require.True(t, h.Acquire()) // a request that is still in flight when the backend is ejected
		for range 5 {
			require.True(t, h.Acquire())
			h.Release(time.Millisecond, ServerError)
		}
		require.EqualValues(t, 5, h.Counters().Consecutive5xx)
		require.NoError(t, h.Eject(ctx, time.Now().Add(time.Second), "consecutive_5xx", "test detail"))
		require.Zero(t, h.Counters().Consecutive5xx, "ejected: the run starts over")

		h.Release(time.Millisecond, ServerError) // the straggler fails too
		require.EqualValues(t, 1, h.Counters().Consecutive5xx)
		<-time.After(time.Second + 100*time.Millisecond)
		synctest.Wait()
		require.True(t, h.Snapshot().Eligible, "back after the ejection")
		require.Equal(t, StateWarming, h.Snapshot().State, "and ramping up")
		require.Zero(t, h.Counters().Consecutive5xx, "a returning backend is not re-ejected for what happened before")
		require.Equal(t, 1, stats(t, h).Ejections)
	})
}

func TestBreakerCountsEveryKindOfFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := New(nil, testConfig()) // threshold 3
		defer h.Stop()
		for _, o := range []Outcome{ServerError, Canceled, GatewayError} {
			require.True(t, h.Acquire())
			h.Release(time.Millisecond, o)
		}
		synctest.Wait()
		require.Equal(t, Closed, h.Snapshot().Breaker, "two failures; a canceled request neither counts nor breaks the run")
		require.True(t, h.Acquire())
		h.Release(time.Second, GatewayError) // a timeout is a gateway failure too
		synctest.Wait()
		require.Equal(t, Open, h.Snapshot().Breaker)
	})
}

func TestBreakerOpenTimeGrowsThroughTheActor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := testConfig()
		c.Breaker.MaxOpenFor = 30 * time.Second
		h := New(nil, c)
		defer h.Stop()
		for range 3 {
			require.True(t, h.Acquire())
			h.Release(time.Millisecond, ServerError)
		}
		synctest.Wait()
		opened := time.Now()
		for _, want := range []time.Duration{10 * time.Second, 20 * time.Second, 30 * time.Second, 30 * time.Second} {
			require.Equal(t, Open, h.Snapshot().Breaker)
			require.Equal(t, opened.Add(want), *stats(t, h).BreakerOpenUntil, "open for %v", want)
			<-time.After(want - 200*time.Millisecond)
			synctest.Wait()
			require.False(t, h.Acquire(), "still open just before its period ends")
			<-time.After(300 * time.Millisecond)
			synctest.Wait()
			require.Equal(t, HalfOpen, h.Snapshot().Breaker)
			require.True(t, h.Acquire(), "the probe")
			h.Release(time.Millisecond, GatewayError)
			synctest.Wait()
			opened = time.Now()
		}
		require.Equal(t, 5, stats(t, h).BreakerTrips)
	})
}

func TestHalfOpenProbeWhoseClientLeftIsGivenBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := New(nil, testConfig())
		defer h.Stop()
		for range 3 {
			require.True(t, h.Acquire())
			h.Release(time.Millisecond, GatewayError)
		}
		<-time.After(10*time.Second + 100*time.Millisecond)
		synctest.Wait()
		require.Equal(t, HalfOpen, h.Snapshot().Breaker)
		require.True(t, h.Acquire(), "the probe")
		require.False(t, h.Acquire())
		h.Release(time.Millisecond, Canceled) // its client went away: no verdict
		<-time.After(200 * time.Millisecond)
		synctest.Wait()
		require.Equal(t, HalfOpen, h.Snapshot().Breaker)
		require.True(t, h.Acquire(), "a new probe is allowed, or the breaker would be stuck half-open")
		h.Release(time.Millisecond, Success)
		synctest.Wait()
		require.Equal(t, Closed, h.Snapshot().Breaker)
	})
}

func TestStartUnhealthyWaitsForItsFirstProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := testConfig()
		c.StartUnhealthy, c.SkipWarmup = true, false
		h := New(nil, c)
		defer h.Stop()
		require.Equal(t, StateUnhealthy, h.Snapshot().State)
		require.False(t, h.Acquire(), "no traffic before a probe says it listens")
		<-time.After(5 * time.Second)
		require.NoError(t, h.HealthResult(context.Background(), true, time.Now(), "status 200"))
		synctest.Wait()
		s := h.Snapshot()
		require.True(t, s.Eligible, "one good probe is enough for a new backend")
		require.Equal(t, StateWarming, s.State)
		require.InDelta(t, 0.1, s.WarmFactor, 0.01, "the ramp starts when it comes up, not when it was added")
	})
}

func TestHealthRecoveryRampsUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := New(nil, testConfig()) // rise 2, fall 2, warm-up 30s
		defer h.Stop()
		ctx := context.Background()
		for _, ok := range []bool{false, false, true, true} {
			require.NoError(t, h.HealthResult(ctx, ok, time.Now(), ""))
		}
		synctest.Wait()
		require.Equal(t, StateWarming, h.Snapshot().State)
		<-time.After(30*time.Second + 100*time.Millisecond)
		synctest.Wait()
		require.Equal(t, StateHealthy, h.Snapshot().State)
	})
}

func TestDrainLetsInflightFinish(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := New(nil, testConfig())
		defer h.Stop()
		require.True(t, h.Acquire())
		require.NoError(t, h.Drain(context.Background(), "test drain"))
		require.False(t, h.Acquire(), "no new requests")
		require.EqualValues(t, 1, h.Inflight())
		h.Release(time.Millisecond, Success)
		require.Zero(t, h.Inflight())
		require.EqualValues(t, 1, stats(t, h).Requests, "the in-flight request completed and counted")
	})
}

func TestRetireStopsAtItsDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := actor.NewRegistry()
		h := New(reg, testConfig())
		require.True(t, h.Acquire()) // never released before the deadline: a stuck request
		start := time.Now()
		require.NoError(t, h.Retire(context.Background(), start.Add(5*time.Second), "test remove"))
		<-h.Done()
		require.GreaterOrEqual(t, time.Since(start), 5*time.Second)
		require.Less(t, time.Since(start), 5*time.Second+200*time.Millisecond, "stopped on the first tick after the deadline")
		h.Release(time.Millisecond, Success) // the straggler's release after the stop is harmless
		require.Zero(t, reg.Len())
	})
}

// nop is an actor that takes every message and does nothing: it stands in
// for a backend actor that has not looked yet.
type nop struct{}

func (nop) Receive(any) {}

func TestARunEndedBeforeTheActorLooksStillOpensTheBreaker(t *testing.T) {
	s := newState(testConfig()) // threshold 3; no actor runs: the test folds by hand
	s.h.ref = actor.Spawn(nil, nop{}, actor.Options{Name: "nop"})
	defer s.h.ref.Stop()
	for _, o := range []Outcome{ServerError, GatewayError, ServerError, Success} {
		require.True(t, s.h.Acquire())
		s.h.Release(time.Millisecond, o)
	}
	require.Zero(t, s.h.Counters().Consecutive5xx, "the success ended the run")
	s.fold(time.Now())
	require.Equal(t, Open, s.breaker.State, "the run reached the threshold between two looks")
}

func TestTakeRunsKeepsTheLongestRunSinceTheLastLook(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.Breaker.FailureThreshold = 100
		h := New(nil, cfg)
		defer h.Stop()
		for _, o := range []Outcome{GatewayError, GatewayError, ServerError, ServerError, ServerError, Success, ServerError} {
			require.True(t, h.Acquire())
			h.Release(time.Millisecond, o)
		}
		f, g := h.TakeRuns()
		require.EqualValues(t, 5, f, "the run of five, ended by a success")
		require.EqualValues(t, 2, g)
		f, g = h.TakeRuns()
		require.EqualValues(t, 1, f, "taken: now only the current run")
		require.Zero(t, g)
	})
}
