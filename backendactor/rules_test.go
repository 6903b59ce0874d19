package backendactor

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBreakerCappedNeverLengthensAnOpenPeriod(t *testing.T) {
	base := BreakerConfig{FailureThreshold: 3, OpenFor: 10 * time.Second, MaxOpenFor: 25 * time.Second, HalfOpenProbes: 1}
	open := func(trips int, d time.Duration) Breaker {
		return Breaker{State: Open, Until: t0.Add(d), Trips: trips, OpenedFor: d}
	}
	with := func(f func(*BreakerConfig)) BreakerConfig {
		c := base
		f(&c)
		return c
	}
	cases := []struct {
		name string
		b    Breaker
		c    BreakerConfig
		want Breaker
	}{
		{"closed stays closed", Breaker{}, with(func(c *BreakerConfig) { c.OpenFor = time.Second }), Breaker{}},
		{"half-open stays half-open", Breaker{State: HalfOpen, Until: t0, Trips: 1, OpenedFor: 10 * time.Second},
			with(func(c *BreakerConfig) { c.OpenFor = time.Second }), Breaker{State: HalfOpen, Until: t0, Trips: 1, OpenedFor: 10 * time.Second}},
		{"first trip: cut to the new open_for", open(1, 10*time.Second),
			with(func(c *BreakerConfig) { c.OpenFor = 4 * time.Second }), open(1, 4*time.Second)},
		{"first trip: a longer open_for waits for the next trip", open(1, 10*time.Second),
			with(func(c *BreakerConfig) { c.OpenFor = 30 * time.Second; c.MaxOpenFor = time.Minute }), open(1, 10*time.Second)},
		{"second trip: the new open_for doubled", open(2, 20*time.Second),
			with(func(c *BreakerConfig) { c.OpenFor = 2 * time.Second }), open(2, 4*time.Second)},
		{"at the cap: cut to the new max_open_for", open(3, 25*time.Second),
			with(func(c *BreakerConfig) { c.MaxOpenFor = 15 * time.Second }), open(3, 15*time.Second)},
		{"no cap: the doubling alone", open(2, 20*time.Second),
			with(func(c *BreakerConfig) { c.MaxOpenFor = 0 }), open(2, 20*time.Second)},
		{"unchanged rules change nothing", open(3, 25*time.Second), base, open(3, 25*time.Second)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := c.b.Capped(c.c)
			require.Equal(t, c.want, got)
			if c.b.State == Open {
				require.Equal(t, c.b.Until.Add(-c.b.OpenedFor), got.Until.Add(-got.OpenedFor), "counted from when it opened")
			}
		})
	}
}

func TestBreakerPeriodFollowsNext(t *testing.T) {
	c := BreakerConfig{FailureThreshold: 1, OpenFor: 3 * time.Second, MaxOpenFor: 40 * time.Second}
	b := Breaker{}
	for trip := 1; trip <= 6; trip++ {
		b = b.Next(BreakerInput{ConsecutiveFailures: 1, Failures: 1}, t0, c)
		if b.State == Open {
			require.Equal(t, b.OpenedFor, c.period(trip), "trip %d", trip)
		}
		b.State = HalfOpen
	}
	require.Equal(t, time.Duration(1<<62), BreakerConfig{OpenFor: 1}.period(200), "no overflow without a cap")
}

// failN sends n failed requests through the handle.
func failN(t *testing.T, h *Handle, n int) {
	t.Helper()
	for range n {
		require.True(t, h.Acquire())
		h.Release(time.Millisecond, GatewayError)
	}
}

// rulesOf is a test config's rules with active checks on (testConfig is
// not a template, so its StartUnhealthy does not say whether checks run).
func rulesOf(c Config) Rules {
	r := c.Rules()
	r.HealthChecked = true
	return r
}

func TestSetRulesBreakerThresholdAppliesToTheNextDecision(t *testing.T) {
	cases := []struct {
		name      string
		threshold int
		before    int // failures before SetRules
		after     int // failures after it
		want      BreakerState
	}{
		{"lowered under the current run: opens at once", 2, 2, 0, Open},
		{"raised: the old threshold no longer opens", 5, 2, 1, Closed},
		{"raised: the new one does, woken at once", 5, 2, 3, Open},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := testConfig() // threshold 3
				h := New(nil, cfg)
				defer h.Stop()
				failN(t, h, c.before)
				synctest.Wait()
				r := rulesOf(cfg)
				r.Breaker.FailureThreshold = c.threshold
				require.NoError(t, h.SetRules(context.Background(), r))
				failN(t, h, c.after)
				synctest.Wait() // a wake-up, if any, is folded; no tick has passed
				require.Equal(t, c.want, h.Snapshot().Breaker)
			})
		})
	}
}

func TestSetRulesCapsARunningOpenPeriod(t *testing.T) {
	cases := []struct {
		name    string
		openFor time.Duration // set 2s after the breaker opened for 10s
		ends    time.Duration // from when it opened
	}{
		{"shorter: ends at its start plus the new period", 5 * time.Second, 5 * time.Second},
		{"shorter than the time already open: half-open at once", time.Second, 2 * time.Second},
		{"longer: the running period is not lengthened", 30 * time.Second, 10 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := testConfig()
				cfg.Breaker.MaxOpenFor = time.Minute
				h := New(nil, cfg)
				defer h.Stop()
				<-time.After(50 * time.Millisecond) // between two ticks
				failN(t, h, 3)
				synctest.Wait()
				opened := time.Now()
				require.Equal(t, Open, h.Snapshot().Breaker)
				<-time.After(2 * time.Second)
				r := rulesOf(cfg)
				r.Breaker.OpenFor = c.openFor
				require.NoError(t, h.SetRules(context.Background(), r))
				if c.ends <= 2*time.Second {
					require.Equal(t, HalfOpen, h.Snapshot().Breaker, "the cut period is over")
					return
				}
				require.Equal(t, opened.Add(c.ends), *stats(t, h).BreakerOpenUntil)
				<-time.After(opened.Add(c.ends - 100*time.Millisecond).Sub(time.Now()))
				synctest.Wait()
				require.Equal(t, Open, h.Snapshot().Breaker, "still open just before")
				<-time.After(200 * time.Millisecond)
				synctest.Wait()
				require.Equal(t, HalfOpen, h.Snapshot().Breaker, "half-open once the period ends")
			})
		})
	}
}

func TestSetRulesWarmupContinuesFromItsStart(t *testing.T) {
	cases := []struct {
		name       string
		warmup     time.Duration // set 10s into a 30s ramp from 10%
		minPercent int
		factor     float64 // right after
		healthyAt  time.Duration
	}{
		{"shorter: the ramp steepens", 20 * time.Second, 10, 0.55, 20 * time.Second},
		{"already past the new duration: done at once", 5 * time.Second, 10, 1, 10 * time.Second},
		{"off: done at once", 0, 10, 1, 10 * time.Second},
		{"longer: the ramp flattens", 60 * time.Second, 10, 0.25, 60 * time.Second},
		{"a higher minimum lifts the ramp", 30 * time.Second, 50, 0.5 + 0.5/3, 30 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := testConfig()
				cfg.SkipWarmup = false
				h := New(nil, cfg)
				defer h.Stop()
				<-time.After(10*time.Second + 50*time.Millisecond)
				synctest.Wait()
				require.InDelta(t, 0.4, h.Snapshot().WarmFactor, 0.01)
				r := rulesOf(cfg)
				r.Warmup, r.WarmupMinPercent = c.warmup, c.minPercent
				require.NoError(t, h.SetRules(context.Background(), r))
				require.InDelta(t, c.factor, h.Snapshot().WarmFactor, 0.01)
				if c.factor == 1 {
					require.Equal(t, StateHealthy, h.Snapshot().State)
					return
				}
				require.Equal(t, StateWarming, h.Snapshot().State)
				<-time.After(c.healthyAt - 10*time.Second - 200*time.Millisecond)
				synctest.Wait()
				require.Equal(t, StateWarming, h.Snapshot().State, "still warming just before the new end")
				<-time.After(300 * time.Millisecond)
				synctest.Wait()
				require.Equal(t, StateHealthy, h.Snapshot().State, "done at its start plus the new duration")
			})
		})
	}
}

func TestSetRulesRiseAndFallApplyToTheNextProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig() // rise 2, fall 2
		h := New(nil, cfg)
		defer h.Stop()
		ctx := context.Background()
		probe := func(ok bool) Stats {
			require.NoError(t, h.HealthResult(ctx, ok, time.Now(), ""))
			return stats(t, h) // after the result: one mailbox
		}
		require.True(t, probe(false).Healthy)
		r := rulesOf(cfg)
		r.Fall, r.Rise = 1, 3
		require.NoError(t, h.SetRules(ctx, r))
		require.True(t, stats(t, h).Healthy, "the run of one bad probe is judged at the next probe")
		require.False(t, probe(false).Healthy, "fall 1")
		require.False(t, probe(true).Healthy)
		require.False(t, probe(true).Healthy, "rise 3, not 2")
		require.True(t, probe(true).Healthy)
	})
}

func TestSetRulesHealthChecked(t *testing.T) {
	cases := []struct {
		name           string
		startUnhealthy bool
		badProbes      int
		wantState      string // right after active checks are turned off
	}{
		{"down by its probes: up, ramping", false, 2, StateWarming},
		{"pending its first probe: up, ramping", true, 0, StateWarming},
		{"up: stays as it is", false, 0, StateHealthy},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := testConfig()
				cfg.StartUnhealthy = c.startUnhealthy
				h := New(nil, cfg)
				defer h.Stop()
				ctx := context.Background()
				for range c.badProbes {
					require.NoError(t, h.HealthResult(ctx, false, time.Now(), "status 503"))
				}
				require.Equal(t, !c.startUnhealthy && c.badProbes == 0, stats(t, h).Healthy)

				r := rulesOf(cfg)
				r.HealthChecked = false
				require.NoError(t, h.SetRules(ctx, r))
				s := stats(t, h)
				require.True(t, s.Healthy)
				require.Equal(t, c.wantState, s.State)
				require.True(t, h.Snapshot().Eligible)

				for range 3 {
					require.NoError(t, h.HealthResult(ctx, false, time.Now(), "late"))
				}
				require.True(t, stats(t, h).Healthy, "a stopping checker's results are ignored")

				r.HealthChecked = true
				require.NoError(t, h.SetRules(ctx, r))
				require.True(t, stats(t, h).Healthy, "checks back on: the health stays until probes say otherwise")
				for range 2 {
					require.NoError(t, h.HealthResult(ctx, false, time.Now(), "status 503"))
				}
				require.False(t, stats(t, h).Healthy, "and probes count again")
			})
		})
	}
}

func TestSetRulesKeepsWhatTheBackendLearned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.MaxInflight = 7
		h := New(nil, cfg)
		defer h.Stop()
		ctx := context.Background()
		for _, d := range []time.Duration{10, 30} {
			require.True(t, h.Acquire())
			h.Release(d*time.Millisecond, Success)
		}
		failN(t, h, 2)
		<-time.After(150 * time.Millisecond)
		require.NoError(t, h.HealthResult(ctx, false, time.Now(), "status 503"))
		require.NoError(t, h.Eject(ctx, time.Now().Add(time.Minute), "consecutive 5xx", "test detail"))
		require.NoError(t, h.SetWeight(ctx, 5))
		require.NoError(t, h.Drain(ctx, "test drain"))
		before := stats(t, h)
		require.Positive(t, before.EWMAMillis)

		r := rulesOf(cfg)
		r.Rise, r.Fall, r.Warmup = 4, 4, time.Minute
		r.Breaker.FailureThreshold, r.Breaker.HalfOpenProbes = 10, 3
		require.NoError(t, h.SetRules(ctx, r))
		require.Equal(t, before, stats(t, h), "EWMA, counters, health, ejection, weight, cap and drain survive")
	})
}

func TestSetRulesRefusesWhatItCannotRun(t *testing.T) {
	cases := []struct {
		name string
		mut  func(*Rules)
		want string
	}{
		{"negative threshold", func(r *Rules) { r.Breaker.FailureThreshold = -1 }, "failure threshold"},
		{"negative open_for", func(r *Rules) { r.Breaker.OpenFor = -time.Second }, "open times"},
		{"negative probes", func(r *Rules) { r.Breaker.HalfOpenProbes = -1 }, "half-open probes"},
		{"negative fall", func(r *Rules) { r.Fall = -2 }, "rise and fall"},
		{"negative warm-up", func(r *Rules) { r.Warmup = -time.Second }, "warm-up duration"},
		{"percent over 100", func(r *Rules) { r.WarmupMinPercent = 101 }, "between 0 and 100"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := testConfig()
				h := New(nil, cfg)
				defer h.Stop()
				r := rulesOf(cfg)
				c.mut(&r)
				err := h.SetRules(context.Background(), r)
				require.ErrorIs(t, err, ErrInvalidRules)
				require.ErrorContains(t, err, c.want)
				require.ErrorContains(t, err, cfg.URL, "names the backend")
				failN(t, h, 3)
				synctest.Wait()
				require.Equal(t, Open, h.Snapshot().Breaker, "the old rules still hold")
			})
		})
	}
}

func TestConfigRulesRoundTrip(t *testing.T) {
	r := Rules{Breaker: BreakerConfig{FailureThreshold: 4, OpenFor: time.Second, MaxOpenFor: time.Minute, HalfOpenProbes: 2},
		Rise: 3, Fall: 5, Warmup: time.Minute, WarmupMinPercent: 20, HealthChecked: true}
	c := testConfig().WithRules(r)
	require.Equal(t, r, c.Rules())
	require.True(t, c.StartUnhealthy, "a template under checked rules starts new backends pending")
	require.Equal(t, testConfig().URL, c.URL, "the backend's own fields stay")
}
