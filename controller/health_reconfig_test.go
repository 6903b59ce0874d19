package controller

import (
	"context"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/actor"
	"github.com/lbd/lbd/backendactor"
)

// after returns the times in ts after at.
func after(ts []time.Time, at time.Time) []time.Time {
	return slices.DeleteFunc(slices.Clone(ts), func(x time.Time) bool { return !x.After(at) })
}

func gaps(ts []time.Time) []time.Duration {
	var out []time.Duration
	for i := 1; i < len(ts); i++ {
		out = append(out, ts[i].Sub(ts[i-1]))
	}
	return out
}

func fourBackends(t *testing.T) (*backendSet, []string) {
	t.Helper()
	urls := []string{"http://a:1", "http://b:1", "http://c:1", "http://d:1"}
	set := &backendSet{}
	var hs []*backendactor.Handle
	for _, u := range urls {
		hs = append(hs, newBackend(t, u, false))
	}
	set.set(hs...)
	return set, urls
}

func TestHealthReconfigureInterval(t *testing.T) {
	cases := []struct {
		name     string
		from, to time.Duration
		// every backend's first probe after the change comes within this
		firstWithin time.Duration
		gapLo       time.Duration // later gaps, jitter 0: the new interval plus at most a tick
		gapHi       time.Duration
	}{
		{"shorter: pending probes come within the new interval", 10 * time.Second, time.Second, time.Second + 100*time.Millisecond, time.Second, time.Second + 100*time.Millisecond},
		{"longer: the next probe stays, then they spread out", time.Second, 4 * time.Second, time.Second + 100*time.Millisecond, 4 * time.Second, 4*time.Second + 100*time.Millisecond},
		{"the tick follows the interval down", 5 * time.Second, 150 * time.Millisecond, 150*time.Millisecond + 15*time.Millisecond, 150 * time.Millisecond, 165 * time.Millisecond},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				set, urls := fourBackends(t)
				p := newScriptedProber()
				hc := startChecker(t, set, p, nil, func(hc *HealthConfig) { hc.Interval, hc.Jitter = c.from, 0 })
				defer stopChecker(t, hc)
				<-time.After(c.from + c.from/5 + 5*time.Millisecond) // every backend probed at least once; between two ticks
				changed := time.Now()
				require.NoError(t, hc.Reconfigure(context.Background(), HealthSettings{Interval: c.to, Timeout: time.Second}))
				require.Equal(t, c.to.String(), hc.Status().Interval)
				<-time.After(c.firstWithin + 3*c.gapHi)
				var firsts []time.Duration
				for _, u := range urls {
					ts := after(p.times(u), changed)
					require.GreaterOrEqual(t, len(ts), 3, "%s: %v", u, ts)
					require.LessOrEqual(t, ts[0].Sub(changed), c.firstWithin, "%s: first probe after the change", u)
					firsts = append(firsts, ts[0].Sub(changed))
					for _, g := range gaps(ts) {
						require.GreaterOrEqual(t, g, c.gapLo, "%s", u)
						require.LessOrEqual(t, g, c.gapHi, "%s", u)
					}
				}
				slices.Sort(firsts)
				require.Greater(t, len(slices.Compact(firsts)), 1, "moved probes are spread, not in step: %v", firsts)
			})
		})
	}
}

func TestHealthReconfigureTimeoutAppliesToTheNextProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		set := &backendSet{}
		h := newBackend(t, "http://slow:1", false)
		set.set(h)
		var mu sync.Mutex
		var waited []time.Duration
		p := newScriptedProber()
		p.set(h.URL(), func(ctx context.Context) ProbeResult {
			start := time.Now()
			<-ctx.Done()
			mu.Lock()
			waited = append(waited, time.Since(start))
			mu.Unlock()
			return ProbeResult{Result: ProbeTimeout}
		})
		hc := startChecker(t, set, p, nil, func(c *HealthConfig) { c.Interval, c.Timeout, c.Jitter = time.Second, 3*time.Second, 0 })
		defer stopChecker(t, hc)
		<-time.After(1500 * time.Millisecond) // the first probe is in flight
		require.Equal(t, 1, hc.Status().Probing)
		require.NoError(t, hc.Reconfigure(context.Background(), HealthSettings{Interval: time.Second, Timeout: 200 * time.Millisecond}))
		<-time.After(5 * time.Second)
		mu.Lock()
		defer mu.Unlock()
		require.Equal(t, 3*time.Second, waited[0], "the probe in flight keeps its timeout")
		require.Greater(t, len(waited), 2)
		for _, w := range waited[1:] {
			require.Equal(t, 200*time.Millisecond, w)
		}
	})
}

// settableProber is a scripted prober that also takes a check.
type settableProber struct {
	*scriptedProber
	mu     sync.Mutex
	checks []httpCheck
}

func (p *settableProber) SetCheck(path string, status int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.checks = append(p.checks, httpCheck{path, status})
}

func TestHealthReconfigureGivesThePathToTheProber(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		set, _ := fourBackends(t)
		p := &settableProber{scriptedProber: newScriptedProber()}
		hc := startChecker(t, set, p, nil, nil)
		defer stopChecker(t, hc)
		require.NoError(t, hc.Reconfigure(context.Background(), HealthSettings{Interval: time.Second, Timeout: time.Second, Path: "/ready", ExpectedStatus: 204}))
		require.Equal(t, []httpCheck{{"/ready", 204}}, p.checks)
	})
}

func TestHealthReconfigureRefusesWhatItCannotRun(t *testing.T) {
	good := HealthSettings{Interval: time.Second, Timeout: time.Second, Jitter: 0.2, Path: "/healthz", ExpectedStatus: 200}
	cases := []struct {
		name string
		mut  func(*HealthSettings)
		want string
	}{
		{"interval", func(s *HealthSettings) { s.Interval = 0 }, "interval must be positive"},
		{"timeout", func(s *HealthSettings) { s.Timeout = -time.Second }, "timeout must be positive"},
		{"jitter", func(s *HealthSettings) { s.Jitter = 2 }, "jitter"},
		{"path", func(s *HealthSettings) { s.Path = "healthz" }, "path must start"},
		{"status", func(s *HealthSettings) { s.ExpectedStatus = 700 }, "expected status"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				set, _ := fourBackends(t)
				p := &settableProber{scriptedProber: newScriptedProber()}
				hc := startChecker(t, set, p, nil, nil)
				defer stopChecker(t, hc)
				s := good
				c.mut(&s)
				require.ErrorContains(t, hc.Reconfigure(context.Background(), s), c.want)
				require.Equal(t, "2s", hc.Status().Interval, "nothing changed")
				require.Empty(t, p.checks)
			})
		})
	}
	t.Run("a prober without a path", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			set, _ := fourBackends(t)
			hc := startChecker(t, set, newScriptedProber(), nil, nil)
			defer stopChecker(t, hc)
			err := hc.Reconfigure(context.Background(), good)
			require.ErrorContains(t, err, "cannot change the path")
			require.Equal(t, "2s", hc.Status().Interval, "nothing changed")
			require.NoError(t, hc.Reconfigure(context.Background(), HealthSettings{Interval: time.Second, Timeout: time.Second}))
		})
	})
}

func TestHTTPProberSetCheck(t *testing.T) {
	noLeaks(t)
	srv, ps := startProbeServer(t, "http1")
	h := handleFor(t, srv.URL, "http1")
	p := NewHTTPProber(HTTPProbeConfig{Path: "/a"})
	defer p.CloseIdleConnections()
	cases := []struct {
		path       string
		status     int
		serves     int32
		wantPath   string
		wantResult string
	}{
		{"/b", 204, 204, "/b", ProbeSuccess},
		{"/b", 204, 200, "/b", ProbeBadStatus},
		{"", 0, 200, "/healthz", ProbeSuccess},
		{"/c", 503, 503, "/c", ProbeSuccess},
	}
	for _, c := range cases {
		p.SetCheck(c.path, c.status)
		ps.status.Store(c.serves)
		r := probeOnce(p, h, time.Second)
		require.Equal(t, c.wantResult, r.Result, "%+v: %s", c, r.Detail)
		require.Equal(t, c.wantPath, *ps.path.Load())
	}
}

func TestHealthCheckersOfTwoPoolsShareTheMetric(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		actors := actor.NewRegistry()
		var hcs []*HealthChecker
		for _, pool := range []string{"", "api"} {
			set := &backendSet{}
			set.set(newBackend(t, "http://same:1", false))
			name := ""
			if pool != "" {
				name = "health-checker:" + pool
			}
			hcs = append(hcs, startChecker(t, set, newScriptedProber(), reg, func(c *HealthConfig) {
				c.Pool, c.Name, c.Registry = pool, name, actors
			}))
		}
		var names []string
		for _, r := range actors.Refs() {
			names = append(names, r.Name())
		}
		require.Equal(t, []string{"health-checker", "health-checker:api"}, names)
		require.Equal(t, "default", hcs[0].Status().Pool)
		<-time.After(5 * time.Second)
		for _, pool := range []string{"default", "api"} {
			require.Positive(t, counterValue(t, reg, "lbd_health_checks_total", "pool", pool, "backend", "http://same:1", "result", ProbeSuccess), pool)
		}
		stopChecker(t, hcs[1])
		mfs, err := reg.Gather()
		require.NoError(t, err)
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					require.False(t, l.GetName() == "pool" && l.GetValue() == "api", "a stopped checker's series are gone")
				}
			}
		}
		require.Positive(t, counterValue(t, reg, "lbd_health_checks_total", "pool", "default", "result", ProbeSuccess), "the other pool's stay")
		stopChecker(t, hcs[0])
	})
}
