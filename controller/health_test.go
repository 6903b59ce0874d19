package controller

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/backendactor"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// scriptedProber answers probes from a per-backend script and records when
// each probe started. It runs on the checker's probe goroutines.
type scriptedProber struct {
	mu      sync.Mutex
	answer  map[string]func(ctx context.Context) ProbeResult
	starts  map[string][]time.Time
	active  map[string]int // probes in flight per backend
	overlap atomic.Bool    // two probes of one backend at once
}

func newScriptedProber() *scriptedProber {
	return &scriptedProber{answer: map[string]func(context.Context) ProbeResult{}, starts: map[string][]time.Time{}, active: map[string]int{}}
}

func (p *scriptedProber) set(url string, f func(ctx context.Context) ProbeResult) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.answer[url] = f
}

func (p *scriptedProber) Probe(ctx context.Context, h *backendactor.Handle) ProbeResult {
	p.mu.Lock()
	p.starts[h.URL()] = append(p.starts[h.URL()], time.Now())
	p.active[h.URL()]++
	if p.active[h.URL()] > 1 {
		p.overlap.Store(true)
	}
	f := p.answer[h.URL()]
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.active[h.URL()]--
		p.mu.Unlock()
	}()
	if f == nil {
		return ProbeResult{Result: ProbeSuccess, Detail: "status 200"}
	}
	return f(ctx)
}

func (p *scriptedProber) times(url string) []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.starts[url])
}

func bad(context.Context) ProbeResult {
	return ProbeResult{Result: ProbeBadStatus, Detail: "status 503, want 200"}
}

func hang(ctx context.Context) ProbeResult {
	<-ctx.Done()
	return ProbeResult{Result: ProbeTimeout, Detail: "no answer"}
}

// backendSet is a mutable backend list, as the scheduler's picker would give.
type backendSet struct {
	hs atomic.Pointer[[]*backendactor.Handle]
}

func (s *backendSet) set(hs ...*backendactor.Handle) { s.hs.Store(&hs) }
func (s *backendSet) get() []*backendactor.Handle    { return *s.hs.Load() }

func newBackend(t *testing.T, url string, startUnhealthy bool) *backendactor.Handle {
	t.Helper()
	h := backendactor.New(nil, backendactor.Config{
		URL: url, Rise: 2, Fall: 3, StartUnhealthy: startUnhealthy, SkipWarmup: true,
		Breaker: backendactor.BreakerConfig{FailureThreshold: 5, OpenFor: 10 * time.Second, HalfOpenProbes: 1},
		Logger:  quietLog,
	})
	t.Cleanup(h.Stop)
	return h
}

func startChecker(t *testing.T, set *backendSet, p Prober, reg prometheus.Registerer, mutate func(*HealthConfig)) *HealthChecker {
	t.Helper()
	c := HealthConfig{
		Interval: 2 * time.Second, Timeout: time.Second, Jitter: 0.2,
		Backends: set.get, Prober: p, Rand: rand.New(rand.NewPCG(1, 2)), Registerer: reg, Logger: quietLog,
	}
	if mutate != nil {
		mutate(&c)
	}
	hc, err := NewHealthChecker(c)
	require.NoError(t, err)
	return hc
}

func stopChecker(t *testing.T, hc *HealthChecker) {
	t.Helper()
	require.NoError(t, hc.Stop(context.Background()))
}

func TestHealthCheckerSpreadsProbesWithJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		urls := []string{"http://a:1", "http://b:1", "http://c:1", "http://d:1"}
		set := &backendSet{}
		var hs []*backendactor.Handle
		for _, u := range urls {
			hs = append(hs, newBackend(t, u, false))
		}
		set.set(hs...)
		p := newScriptedProber()
		start := time.Now()
		hc := startChecker(t, set, p, nil, nil)
		<-time.After(60 * time.Second)
		stopChecker(t, hc)

		var firsts []time.Duration
		for _, u := range urls {
			ts := p.times(u)
			require.InDelta(t, 30, len(ts), 2, "%s: about one probe per 2s interval", u)
			first := ts[0].Sub(start)
			require.Less(t, first, 2*time.Second+100*time.Millisecond, "%s: first probed within one interval", u)
			firsts = append(firsts, first)
			var gaps []time.Duration
			for i := 1; i < len(ts); i++ {
				gap := ts[i].Sub(ts[i-1])
				require.GreaterOrEqual(t, gap, 1500*time.Millisecond, "%s: never sooner than interval x (1 - jitter), less a tick", u)
				require.LessOrEqual(t, gap, 2500*time.Millisecond, "%s: never later than interval x (1 + jitter), plus a tick", u)
				gaps = append(gaps, gap)
			}
			slices.Sort(gaps)
			require.Greater(t, gaps[len(gaps)-1]-gaps[0], 400*time.Millisecond, "%s: the gaps vary: jitter", u)
		}
		slices.Sort(firsts)
		require.Len(t, slices.Compact(firsts), len(urls), "no two backends are probed in step: %v", firsts)
		require.False(t, p.overlap.Load())
	})
}

func TestHealthCheckerFeedsRiseAndFallToTheBackend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		set := &backendSet{}
		a, b := newBackend(t, "http://a:1", false), newBackend(t, "http://b:1", false)
		set.set(a, b)
		p := newScriptedProber()
		p.set(b.URL(), bad)
		reg := prometheus.NewRegistry()
		hc := startChecker(t, set, p, reg, nil)
		defer stopChecker(t, hc)

		// fall=3: three bad probes, the first within 2s and then every 2s ± 20%.
		<-time.After(2*time.Second + 2*2400*time.Millisecond + 200*time.Millisecond)
		synctest.Wait()
		require.Equal(t, backendactor.StateUnhealthy, b.Snapshot().State)
		require.Equal(t, backendactor.StateHealthy, a.Snapshot().State)
		st, err := b.Stats(context.Background())
		require.NoError(t, err)
		require.Equal(t, "status 503, want 200", st.LastProbeDetail)

		p.set(b.URL(), nil) // it recovers: rise=2
		<-time.After(2*2400*time.Millisecond + 200*time.Millisecond)
		synctest.Wait()
		require.True(t, b.Snapshot().Eligible)

		require.GreaterOrEqual(t, counterValue(t, reg, "lbd_health_checks_total", "backend", b.URL(), "result", ProbeBadStatus), 3.0)
		require.Zero(t, counterValue(t, reg, "lbd_health_checks_total", "backend", a.URL(), "result", ProbeBadStatus))
		require.Positive(t, counterValue(t, reg, "lbd_health_checks_total", "backend", a.URL(), "result", ProbeSuccess))
	})
}

// counterValue reads the counter name{labels...} (label, value pairs) from reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no %s%v", name, labels)
	return 0
}

func TestHealthCheckerTimeoutAndNoOverlap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		set := &backendSet{}
		h := newBackend(t, "http://slow:1", false)
		set.set(h)
		p := newScriptedProber()
		p.set(h.URL(), hang)
		reg := prometheus.NewRegistry()
		hc := startChecker(t, set, p, reg, func(c *HealthConfig) {
			c.Interval, c.Timeout, c.Jitter = time.Second, 3*time.Second, 0
		})
		<-time.After(20 * time.Second)
		require.GreaterOrEqual(t, counterValue(t, reg, "lbd_health_checks_total", "backend", h.URL(), "result", ProbeTimeout), 3.0)
		stopChecker(t, hc)
		ts := p.times(h.URL())
		require.False(t, p.overlap.Load(), "a backend is never probed twice at once")
		for i := 1; i < len(ts); i++ {
			require.GreaterOrEqual(t, ts[i].Sub(ts[i-1]), 3*time.Second, "the next probe waits for the timed-out one")
		}
		require.Equal(t, backendactor.StateUnhealthy, h.Snapshot().State, "timeouts are failures")
	})
}

func TestHealthCheckerFollowsTheBackendSet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		set := &backendSet{}
		a := newBackend(t, "http://a:1", false)
		set.set(a)
		p := newScriptedProber()
		reg := prometheus.NewRegistry()
		hc := startChecker(t, set, p, reg, nil)
		defer stopChecker(t, hc)
		<-time.After(5 * time.Second)

		// Added at runtime: it starts unhealthy and is probed at once, and
		// its first good probe brings it up.
		b := newBackend(t, "http://b:1", true)
		require.False(t, b.Snapshot().Eligible)
		added := time.Now()
		set.set(a, b)
		<-time.After(300 * time.Millisecond)
		synctest.Wait()
		ts := p.times(b.URL())
		require.Len(t, ts, 1)
		require.Less(t, ts[0].Sub(added), 150*time.Millisecond, "probed on the next tick")
		require.True(t, b.Snapshot().Eligible)
		require.Equal(t, 2, hc.Status().Backends)

		set.set(b) // a is removed
		<-time.After(100 * time.Millisecond)
		n := len(p.times(a.URL()))
		<-time.After(10 * time.Second)
		require.Len(t, p.times(a.URL()), n, "a removed backend is no longer probed")
		mfs, err := reg.Gather()
		require.NoError(t, err)
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					require.False(t, l.GetName() == "backend" && l.GetValue() == a.URL(), "its series are gone")
				}
			}
		}
	})
}

func TestHealthCheckerStopCancelsProbesInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		set := &backendSet{}
		h := newBackend(t, "http://a:1", false)
		set.set(h)
		var canceled atomic.Int32
		p := newScriptedProber()
		p.set(h.URL(), func(ctx context.Context) ProbeResult {
			<-ctx.Done()
			canceled.Add(1)
			return ProbeResult{Result: ProbeTimeout}
		})
		hc := startChecker(t, set, p, nil, func(c *HealthConfig) { c.Timeout = time.Hour })
		<-time.After(3 * time.Second)
		synctest.Wait()
		require.Equal(t, 1, hc.Status().Probing)
		stopChecker(t, hc) // returns only after the probe's goroutine has
		require.EqualValues(t, 1, canceled.Load())
	})
}

func TestHealthConfigValidate(t *testing.T) {
	ok := HealthConfig{Interval: time.Second, Timeout: time.Second, Jitter: 0.2, Backends: func() []*backendactor.Handle { return nil }, Prober: newScriptedProber()}
	require.NoError(t, ok.Validate())
	cases := map[string]func(*HealthConfig){
		"interval": func(c *HealthConfig) { c.Interval = 0 },
		"timeout":  func(c *HealthConfig) { c.Timeout = -1 },
		"jitter":   func(c *HealthConfig) { c.Jitter = 1.5 },
		"prober":   func(c *HealthConfig) { c.Prober = nil },
	}
	for name, mutate := range cases {
		c := ok
		mutate(&c)
		require.ErrorContains(t, c.Validate(), name)
	}
}

// TestDetectionTimeFollowsTheSchedule kills a backend 30ms after the
// checker starts, at lbd's defaults (2s ± 20%, fall 3), for 200 seeds of the
// jitter: the time until the backend is marked down must follow the model
// docs/SCENARIOS.md computes — the wait for the next probe (about 1s) plus two
// intervals: 5.0s on average, never under 3.2s nor over 7.2s (+ one tick).
func TestDetectionTimeFollowsTheSchedule(t *testing.T) {
	const runs = 200
	var sum, lo, hi time.Duration
	lo = time.Hour
	for seed := range runs {
		synctest.Test(t, func(t *testing.T) {
			set := &backendSet{}
			h := newBackend(t, "http://a:1", false) // rise 2, fall 3
			set.set(h)
			kill := time.Now().Add(30 * time.Millisecond)
			p := newScriptedProber()
			p.set(h.URL(), func(context.Context) ProbeResult {
				if time.Now().After(kill) {
					return ProbeResult{Result: ProbeError, Detail: "connect: connection refused"}
				}
				return ProbeResult{Result: ProbeSuccess}
			})
			hc := startChecker(t, set, p, nil, func(c *HealthConfig) { c.Rand = rand.New(rand.NewPCG(uint64(seed), 7)) })
			defer stopChecker(t, hc)
			<-time.After(time.Until(kill))
			for h.Snapshot().State != backendactor.StateUnhealthy {
				<-time.After(10 * time.Millisecond)
			}
			d := time.Since(kill)
			sum, lo, hi = sum+d, min(lo, d), max(hi, d)
		})
	}
	mean := sum / runs
	require.InDelta(t, 5.0, mean.Seconds(), 0.15, "mean %v", mean)
	require.GreaterOrEqual(t, lo, 3200*time.Millisecond)
	require.LessOrEqual(t, hi, 7300*time.Millisecond)
	t.Logf("marked down after %v on average (%v-%v) over %d seeds", mean, lo, hi, runs)
}

// A probe lbd could not make (out of file descriptors) leaves the backend
// as it was: counted, logged, never a failure of the backend.
func TestHealthCheckerIgnoresLocalErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		set := &backendSet{}
		b := newBackend(t, "http://b:1", false)
		set.set(b)
		p := newScriptedProber()
		p.set(b.URL(), func(context.Context) ProbeResult {
			return ProbeResult{Result: ProbeLocalError, Detail: "lbd is out of file descriptors: socket: too many open files"}
		})
		reg := prometheus.NewRegistry()
		hc := startChecker(t, set, p, reg, nil)
		defer stopChecker(t, hc)
		<-time.After(10 * 2400 * time.Millisecond) // far more than fall=3 probes
		synctest.Wait()
		require.Equal(t, backendactor.StateHealthy, b.Snapshot().State)
		require.GreaterOrEqual(t, counterValue(t, reg, "lbd_health_checks_total", "backend", b.URL(), "result", ProbeLocalError), 5.0)

		p.set(b.URL(), bad) // a real failure still counts
		<-time.After(4 * 2400 * time.Millisecond)
		synctest.Wait()
		require.Equal(t, backendactor.StateUnhealthy, b.Snapshot().State)
	})
}
