package daemon

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/internal/loadgen"
	"github.com/lbd/lbd/internal/synth"
	"github.com/lbd/lbd/scheduler"
)

// fastHealth makes active checks fast enough for a test: a probe every
// 100ms ± 20%, down after two bad ones, up after two good ones.
func fastHealth(cfg *config.Config) {
	cfg.Health.Interval, cfg.Health.Timeout = config.Duration(100*time.Millisecond), config.Duration(200*time.Millisecond)
	cfg.Health.Rise, cfg.Health.Fall = 2, 2
}

// eventually polls cond every 20ms until it holds, failing after limit. The
// e2e tests run on real sockets, so they wait on real time, but on a
// condition, never on a fixed sleep.
func eventually(t *testing.T, limit time.Duration, msg string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(limit)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("after %v: %s", limit, msg)
		}
	}
}

type backendView struct {
	URL      string `json:"url"`
	State    string `json:"state"`
	Breaker  string `json:"breaker"`
	Requests int    `json:"requests"`
}

func (l *testLBD) backendStates(t *testing.T) map[string]backendView {
	t.Helper()
	var doc struct {
		Backends []backendView `json:"backends"`
	}
	getJSON(t, l.adminURL+"/admin/backends", &doc)
	out := map[string]backendView{}
	for _, b := range doc.Backends {
		out[b.URL] = b
	}
	return out
}

type outliersView struct {
	Enabled bool `json:"enabled"`
	Ejected []struct {
		URL       string    `json:"url"`
		Reason    string    `json:"reason"`
		Detail    string    `json:"detail"`
		Since     time.Time `json:"since"`
		Until     time.Time `json:"until"`
		Ejections int       `json:"ejections"`
	} `json:"ejected"`
}

func (l *testLBD) outliers(t *testing.T) outliersView {
	t.Helper()
	var v outliersView
	getJSON(t, l.adminURL+"/admin/outliers", &v)
	return v
}

func TestBackendStoppedUnderLoadCostsNoErrors(t *testing.T) {
	backends := startBackends(t,
		synth.Knobs{Name: "a", Latency: time.Millisecond}, synth.Knobs{Name: "b", Latency: time.Millisecond},
		synth.Knobs{Name: "c", Latency: time.Millisecond}, synth.Knobs{Name: "d", Latency: time.Millisecond})
	l := startLBD(t, backends, fastHealth)
	victim := backends[1]

	var res *loadgen.Result
	var loadErr error
	var wg sync.WaitGroup
	// Three clients: the retry budget always allows three retries at once
	// (retries.budget_percent's floor), so every failed try may be retried.
	wg.Go(func() {
		res, loadErr = loadgen.Run(context.Background(), loadgen.Config{
			URL: l.url + "/", Concurrency: 3, N: 4000, Duration: 4 * time.Second,
		})
	})
	eventually(t, 5*time.Second, "the victim serves some of the load", func() bool { return victim.Server.Requests() > 100 })
	require.NoError(t, victim.Close()) // listener and connections gone: refused, reset
	eventually(t, 5*time.Second, "the victim is taken out", func() bool {
		// Its failed tries eject it at once (consecutive gateway failures);
		// the health checks mark it down too, but ejected is the state shown.
		st := l.backendStates(t)[victim.URL()].State
		return st == "ejected" || st == "unhealthy"
	})
	wg.Wait()
	require.NoError(t, loadErr)
	require.Zero(t, res.Errors, "no transport errors: %v", res.ErrorKinds)
	require.Equal(t, map[int]int64{http.StatusOK: res.Sent}, res.Status, "no client saw the failure")
	require.Len(t, res.Backend, 4)
	require.Regexp(t, `lbd_retries_total [1-9]`, l.metrics(t), "the failed tries were retried elsewhere")
}

func TestErroringBackendIsEjectedAndReturns(t *testing.T) {
	backends := startBackends(t, synth.Knobs{Name: "good"}, synth.Knobs{Name: "bad", ErrorRate: 1}, synth.Knobs{Name: "good2"})
	bad := backends[1]
	l := startLBD(t, backends, func(cfg *config.Config) {
		fastHealth(cfg) // /healthz says 200 all along: only traffic gives it away
		cfg.Policy = "rr"
		cfg.Outlier.BaseEjection, cfg.Outlier.Interval = config.Duration(1500*time.Millisecond), config.Duration(time.Second)
		cfg.Breaker.OpenFor, cfg.Breaker.MaxOpenFor = config.Duration(300*time.Millisecond), config.Duration(300*time.Millisecond)
	})

	// Requests until the detector's poll (every 100ms) has seen the run of
	// 5xx and ejected it: bounded in time, not in count, since a fast
	// machine sends hundreds of requests before the first poll.
	deadline := time.Now().Add(5 * time.Second)
	for len(l.outliers(t).Ejected) == 0 {
		require.True(t, time.Now().Before(deadline), "ejected within 5s")
		resp, _ := l.get(t, "/")
		require.Equal(t, http.StatusOK, resp.StatusCode, "its 500s were retried on a good backend")
	}
	o := l.outliers(t)
	require.True(t, o.Enabled)
	require.Len(t, o.Ejected, 1)
	e := o.Ejected[0]
	require.Equal(t, bad.URL(), e.URL)
	require.Contains(t, []string{"consecutive_5xx", "success_rate"}, e.Reason)
	require.Equal(t, 1500*time.Millisecond, e.Until.Sub(e.Since))
	require.Equal(t, 1, e.Ejections)
	require.Equal(t, "ejected", l.backendStates(t)[bad.URL()].State)
	require.Contains(t, l.metrics(t), `lbd_outlier_ejections_total{backend="`+bad.URL()+`",pool="default"} 1`)

	before := bad.Server.Requests()
	for range 30 {
		resp, body := l.get(t, "/")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
	}
	require.Equal(t, before, bad.Server.Requests(), "an ejected backend gets no traffic")

	bad.Server.SetKnobs(synth.Knobs{Name: "bad"}) // it behaves again
	eventually(t, 5*time.Second, "the ejection ends by itself", func() bool {
		return len(l.outliers(t).Ejected) == 0 && l.backendStates(t)[bad.URL()].State == "healthy"
	})
	require.WithinDuration(t, e.Until, time.Now(), time.Second, "at the end of its ejection time")
	for range 30 {
		resp, _ := l.get(t, "/")
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	require.Greater(t, bad.Server.Requests(), before, "back in rotation")
}

func TestAllBackendsDownIs503NoBackend(t *testing.T) {
	backends := startBackends(t, synth.Knobs{Name: "a"}, synth.Knobs{Name: "b"})
	l := startLBD(t, backends, fastHealth)
	resp, _ := l.get(t, "/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	for _, b := range backends {
		require.NoError(t, b.Close())
	}
	eventually(t, 5*time.Second, "/readyz says not ready", func() bool {
		r, err := http.Get(l.adminURL + "/readyz")
		require.NoError(t, err)
		r.Body.Close()
		return r.StatusCode == http.StatusServiceUnavailable
	})
	resp, _ = l.get(t, "/")
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, "no-backend", resp.Header.Get("X-Lbd-Reject"))
	for u, b := range l.backendStates(t) {
		require.Equal(t, "unhealthy", b.State, u)
	}
	require.Regexp(t, `lbd_health_checks_total\{backend="[^"]+",pool="default",result="error"\} [1-9]`, l.metrics(t))
}

func TestAtMostHalfTheBackendsAreEjected(t *testing.T) {
	backends := startBackends(t, synth.Knobs{Name: "good"},
		synth.Knobs{Name: "bad1", ErrorRate: 1}, synth.Knobs{Name: "bad2", ErrorRate: 1}, synth.Knobs{Name: "bad3", ErrorRate: 1})
	l := startLBD(t, backends, func(cfg *config.Config) {
		fastHealth(cfg)
		cfg.Policy = "rr"
		cfg.Breaker.FailureThreshold = 1_000_000 // the third bad one keeps its traffic: the cap alone holds it
		cfg.Outlier.BaseEjection, cfg.Outlier.MaxEjection = config.Duration(500*time.Millisecond), config.Duration(time.Second)
		cfg.Outlier.MaxEjectionPercent = 50
	})
	most := 0
	for i := range 600 {
		l.get(t, "/")
		if i%10 != 0 {
			continue
		}
		n := len(l.outliers(t).Ejected)
		require.LessOrEqual(t, n, 2, "3 of 4 failing, max_ejection_percent 50")
		states := 0
		for _, b := range l.backendStates(t) {
			if b.State == "ejected" {
				states++
			}
		}
		require.LessOrEqual(t, states, 2)
		most = max(most, n)
	}
	require.Equal(t, 2, most)
	require.Equal(t, "healthy", l.backendStates(t)[backends[0].URL()].State)
}

func TestBackendAddedAtRuntimeWaitsForItsFirstProbe(t *testing.T) {
	backends := startBackends(t, synth.Knobs{Name: "a"})
	l := startLBD(t, backends, func(cfg *config.Config) {
		fastHealth(cfg)
		cfg.Policy = "rr"
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())
	ctx := context.Background()
	_, err = l.sched().Add(ctx, scheduler.Spec{URL: dead, Weight: 1})
	require.NoError(t, err)
	require.Equal(t, "unhealthy", l.backendStates(t)[dead].State, "not listening: no traffic before a probe")
	require.Equal(t, map[string]int{"a": 20}, l.spread(t, 20))

	late := startBackends(t, synth.Knobs{Name: "late"})[0]
	_, err = l.sched().Add(ctx, scheduler.Spec{URL: late.URL(), Weight: 1})
	require.NoError(t, err)
	eventually(t, 2*time.Second, "one good probe brings it in", func() bool {
		return l.backendStates(t)[late.URL()].State == "healthy"
	})
	require.Equal(t, map[string]int{"a": 10, "late": 10}, l.spread(t, 20))
	require.Equal(t, "unhealthy", l.backendStates(t)[dead].State)
}

func TestHealthPathAndExpectedStatus(t *testing.T) {
	cases := []struct {
		path     string
		expected int
		down     string
	}{
		{"/healthz", 200, "sick"},
		{"/healthz", 503, "fine"},
		{"/status/204", 204, ""}, // synth answers /status/NNN with NNN: both pass
	}
	for _, c := range cases {
		t.Run(strings.TrimPrefix(c.path, "/")+"-"+http.StatusText(c.expected), func(t *testing.T) {
			backends := startBackends(t, synth.Knobs{Name: "fine"}, synth.Knobs{Name: "sick", HealthStatus: 503})
			l := startLBD(t, backends, func(cfg *config.Config) {
				fastHealth(cfg)
				cfg.Health.Path, cfg.Health.ExpectedStatus = c.path, c.expected
			})
			want := map[string]string{"fine": "healthy", "sick": "healthy"}
			if c.down != "" {
				want[c.down] = "unhealthy"
			}
			eventually(t, 3*time.Second, "states settle", func() bool {
				st := l.backendStates(t)
				return st[backends[0].URL()].State == want["fine"] && st[backends[1].URL()].State == want["sick"]
			})
		})
	}
}

func TestFailureDetectionDisabled(t *testing.T) {
	backends := startBackends(t, synth.Knobs{Name: "a", HealthStatus: 503})
	l := startLBD(t, backends, func(cfg *config.Config) {
		fastHealth(cfg)
		cfg.Health.Disabled, cfg.Outlier.Disabled = true, true
	})
	var actors struct {
		Actors []struct{ Kind string } `json:"actors"`
	}
	getJSON(t, l.adminURL+"/debug/actors", &actors)
	for _, a := range actors.Actors {
		require.NotContains(t, []string{"health", "outlier"}, a.Kind)
	}
	require.Zero(t, backends[0].Server.HealthChecks(), "nothing probes")
	require.False(t, l.outliers(t).Enabled)
	resp, _ := l.get(t, "/")
	require.Equal(t, http.StatusOK, resp.StatusCode, "its failing /healthz is not looked at")

	r, err := http.Post(l.adminURL+"/admin/outliers", "application/json", nil)
	require.NoError(t, err)
	defer r.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, r.StatusCode)
	var e map[string]string
	require.NoError(t, json.NewDecoder(r.Body).Decode(&e))
	require.NotEmpty(t, e["error"])
}

func TestFailureDetectionStopsClean(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { // registered first: runs after lbd and the backends have stopped
		http.DefaultClient.CloseIdleConnections()
		goleak.VerifyNone(t, ignore)
	})
	probed := make(chan struct{}, 1)
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" { // answers no probe: lbd must cancel it to stop
			select {
			case probed <- struct{}{}:
			default:
			}
			<-r.Context().Done()
		}
	}))
	t.Cleanup(hanging.Close)
	backends := startBackends(t, synth.Knobs{Name: "a"})
	l := startLBD(t, backends, func(cfg *config.Config) {
		fastHealth(cfg)
		cfg.Health.Timeout = config.Duration(time.Hour)
		cfg.Backends = append(cfg.Backends, config.Backend{URL: hanging.URL, Weight: 1, Protocol: "http1"})
	})
	select {
	case <-probed:
	case <-time.After(5 * time.Second):
		t.Fatal("the hanging backend was never probed")
	}
	eventually(t, 2*time.Second, "probes run", func() bool { return backends[0].Server.HealthChecks() > 2 })
	l.spread(t, 4)
	var actors struct {
		Actors []struct{ Kind, State string } `json:"actors"`
	}
	getJSON(t, l.adminURL+"/debug/actors", &actors)
	for _, a := range actors.Actors {
		if a.Kind == "health" {
			require.Regexp(t, `probing=[12] `, a.State, "the hanging probe is in flight while lbd shuts down")
		}
	}
}
