package daemon

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/internal/loadgen"
	"github.com/lbd/lbd/internal/synth"
	"github.com/lbd/lbd/routing"
)

// adminCall sends one admin request and decodes its JSON answer.
func adminCall(t *testing.T, adminURL, method, path, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, adminURL+path, rd)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var m map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
	return resp.StatusCode, m
}

// mustAdmin is adminCall for a call that must succeed.
func mustAdmin(t *testing.T, adminURL, method, path, body string) map[string]any {
	t.Helper()
	code, m := adminCall(t, adminURL, method, path, body)
	require.Less(t, code, 300, "%s %s: %d %v", method, path, code, m)
	return m
}

// loadTotals sums the rounds of loadWhile.
type loadTotals struct {
	completed, ok, errors int64
	other                 map[int]int64
}

// loadWhile runs bounded GET rounds (4 clients, 250ms each, at most 200
// rounds) until stop is closed, and sends the totals on the returned channel.
func loadWhile(url string, stop <-chan struct{}) <-chan loadTotals {
	out := make(chan loadTotals, 1)
	go func() {
		tot := loadTotals{other: map[int]int64{}}
		defer func() { out <- tot }()
		for range 200 {
			res, err := loadgen.Run(context.Background(), loadgen.Config{
				URL: url + "/", Concurrency: 4, N: 100_000, Duration: 250 * time.Millisecond,
			})
			if err != nil {
				tot.errors++
				return
			}
			tot.completed += res.Completed
			tot.errors += res.Errors
			for code, n := range res.Status {
				if code == http.StatusOK {
					tot.ok += n
				} else {
					tot.other[code] += n
				}
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	return out
}

// waitFor polls cond every 10ms until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(d)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
	}
}

// Admin churn under load: add, drain, undrain and remove a backend 100 times
// while GETs flow. Each time the added backend is probed, takes traffic and
// is removed with requests in flight (every backend answers in 2ms): no
// client sees an error, and every retired backend actor is gone at the end.
func TestAdminChurnUnderLoad(t *testing.T) {
	slow := func(name string) synth.Knobs { return synth.Knobs{Name: name, Latency: 2 * time.Millisecond} }
	bs := startBackends(t, slow("a"), slow("b"), slow("c"))
	l := startLBD(t, bs[:2], func(c *config.Config) {
		c.Health.Interval, c.Health.Timeout = config.Duration(50*time.Millisecond), config.Duration(40*time.Millisecond)
		c.Health.Rise = 1
	})
	actors := l.d.registry.Len()
	stop := make(chan struct{})
	totals := loadWhile(l.url, stop)
	c, cSrv := bs[2].URL(), bs[2].Server
	busyAtRemove := 0
	for range 100 {
		before := cSrv.Requests()
		mustAdmin(t, l.adminURL, "POST", "/admin/backends", `{"url":"`+c+`","weight":1}`)
		waitFor(t, 5*time.Second, "the added backend to take traffic", func() bool { return cSrv.Requests() > before })
		mustAdmin(t, l.adminURL, "POST", "/admin/drain?url="+c, "")
		mustAdmin(t, l.adminURL, "POST", "/admin/undrain?url="+c, "")
		if cSrv.Inflight() > 0 {
			busyAtRemove++
		}
		mustAdmin(t, l.adminURL, "DELETE", "/admin/backends?url="+c, "")
	}
	close(stop)
	tot := <-totals
	require.Zero(t, tot.errors, "transport errors")
	require.Empty(t, tot.other, "non-200 answers")
	require.Positive(t, tot.ok)
	waitFor(t, 10*time.Second, "retired backend actors to stop", func() bool { return l.d.registry.Len() == actors })
	t.Logf("churn: %d GETs, all 200; %d admin calls; the churned backend served %d, and had requests in flight at %d of 100 removals",
		tot.ok, 400, cSrv.Requests(), busyAtRemove)
}

// testConfig is startLBD's config, for tests that start and stop Apps themselves.
func testConfig(bs []*synth.Running, mutate func(*config.Config)) *config.Config {
	cfg := config.Default()
	cfg.Listen, cfg.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.AccessLog.Mode = "off"
	cfg.Warmup.Duration = 0
	for _, b := range bs {
		cfg.Backends = append(cfg.Backends, config.Backend{URL: b.URL(), Weight: 1, Protocol: "http1"})
	}
	if mutate != nil {
		mutate(cfg)
	}
	return cfg
}

// A restart with a state file restores added backends, drains, caps, policy and canary.
func TestRestartRestoresState(t *testing.T) {
	bs := startBackends(t, synth.Knobs{Name: "a"}, synth.Knobs{Name: "b"}, synth.Knobs{Name: "c"})
	state := filepath.Join(t.TempDir(), "state.json")
	mutate := func(c *config.Config) { c.StateFile = state }
	a, b, c := bs[0].URL(), bs[1].URL(), bs[2].URL()

	first := startDaemon(t, testConfig(bs[:2], mutate))
	adminURL := "http://" + first.AdminAddr()
	mustAdmin(t, adminURL, "POST", "/admin/backend/add?url="+c+"&weight=2&max_inflight=5", "")
	mustAdmin(t, adminURL, "POST", "/admin/drain?url="+b, "")
	mustAdmin(t, adminURL, "POST", "/admin/backend/cap?url="+a+"&max_inflight=3", "")
	mustAdmin(t, adminURL, "PUT", "/admin/policy", `{"policy":"lc","sticky":{"enabled":true,"key":"header:X-User"}}`)
	mustAdmin(t, adminURL, "POST", "/admin/canary/set?url="+c+"&percent=10", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, first.Shutdown(ctx))

	raw, err := os.ReadFile(state)
	require.NoError(t, err)
	require.Contains(t, string(raw), `"version": 2`)

	l := startLBD(t, bs[:2], mutate) // the same config file: state wins
	got := map[string]map[string]any{}
	for _, st := range mustAdmin(t, l.adminURL, "GET", "/admin/backends", "")["backends"].([]any) {
		m := st.(map[string]any)
		got[m["url"].(string)] = m
	}
	require.Len(t, got, 3)
	require.Equal(t, 3.0, got[a]["max_inflight"])
	require.Equal(t, true, got[b]["draining"])
	require.Equal(t, 2.0, got[c]["weight"])
	require.Equal(t, 5.0, got[c]["max_inflight"])
	pol := mustAdmin(t, l.adminURL, "GET", "/admin/policy", "")
	require.Equal(t, "lc", pol["policy"])
	require.Equal(t, map[string]any{"enabled": true, "key": "header:X-User"}, pol["sticky"])
	require.Equal(t, map[string]any{"pool": "default", "backend": c, "percent": 10.0}, mustAdmin(t, l.adminURL, "GET", "/admin/canary", ""))
	eff := mustAdmin(t, l.adminURL, "GET", "/debug/config", "")
	require.Equal(t, "lc", eff["policy"], "/debug/config shows the effective configuration")
	writes := map[string]float64{}
	for _, m := range scrape(t, l.adminURL)["lbd_state_file_writes_total"].GetMetric() {
		writes[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
	}
	require.Equal(t, map[string]float64{"success": 1, "failure": 0}, writes, "written once at start")
}

func TestHealthAlive(t *testing.T) {
	now := time.Unix(1700000000, 0)
	detail, err := healthAlive(now.Add(-50*time.Millisecond), 7, now)
	require.NoError(t, err)
	require.Equal(t, "ticked 50ms ago, 7 probes so far", detail)
	_, err = healthAlive(now.Add(-3*time.Second), 7, now)
	require.ErrorContains(t, err, "last ticked 3s ago")
}

// The running daemon's selftest pings every actor (backends, scheduler,
// health checker, outlier detector, limiter, ...) and picks once.
func TestSelftestEndToEnd(t *testing.T) {
	l := startLBD(t, startBackends(t, synth.Knobs{Name: "a"}), nil)
	code, m := adminCall(t, l.adminURL, "GET", "/admin/selftest", "")
	require.Equal(t, http.StatusOK, code, "%v", m)
	require.Equal(t, true, m["ok"])
	var names []string
	for _, c := range m["checks"].([]any) {
		names = append(names, c.(map[string]any)["name"].(string))
	}
	require.Equal(t, []string{"actors", "health", "metrics", "scheduler"}, names)
	code, m = adminCall(t, l.adminURL, "GET", "/admin/drain", "")
	require.Equal(t, http.StatusMethodNotAllowed, code)
	require.Contains(t, m["error"], "POST")
}

// /debug/config is the effective configuration: admin changes show in it.
func TestDebugConfigFollowsAdmin(t *testing.T) {
	bs := startBackends(t, synth.Knobs{Name: "a"}, synth.Knobs{Name: "b"})
	l := startLBD(t, bs[:1], nil)
	urls := func() []string {
		var out []string
		for _, b := range mustAdmin(t, l.adminURL, "GET", "/debug/config", "")["backends"].([]any) {
			out = append(out, b.(map[string]any)["url"].(string))
		}
		return out
	}
	mustAdmin(t, l.adminURL, "POST", "/admin/backend/add?url="+bs[1].URL(), "")
	mustAdmin(t, l.adminURL, "POST", "/admin/policy?name=rr", "")
	require.Equal(t, []string{bs[0].URL(), bs[1].URL()}, urls())
	require.Equal(t, "rr", mustAdmin(t, l.adminURL, "GET", "/debug/config", "")["policy"])
	mustAdmin(t, l.adminURL, "POST", "/admin/backend/remove?url="+bs[0].URL(), "")
	require.Equal(t, []string{bs[1].URL()}, urls())
}

// A config file edited while lbd was down is not ignored because a state
// file exists: what the file changed since the state was written wins, the
// rest of the admin changes stay.
func TestRestartAppliesFileEdits(t *testing.T) {
	bs := startBackends(t, synth.Knobs{Name: "a"}, synth.Knobs{Name: "b"}, synth.Knobs{Name: "c"}, synth.Knobs{Name: "d"})
	state := filepath.Join(t.TempDir(), "state.json")
	a, b, c, d := bs[0].URL(), bs[1].URL(), bs[2].URL(), bs[3].URL()
	first := startDaemon(t, testConfig(bs[:2], func(c *config.Config) { c.StateFile = state }))
	adminURL := "http://" + first.AdminAddr()
	mustAdmin(t, adminURL, "POST", "/admin/backend/cap?url="+a+"&max_inflight=3", "")
	mustAdmin(t, adminURL, "POST", "/admin/backend/add?url="+c, "")
	mustAdmin(t, adminURL, "PUT", "/admin/policy", `{"policy":"lc"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, first.Shutdown(ctx))

	// While down: b leaves the file, d joins, a's weight changes.
	l := startLBD(t, []*synth.Running{bs[0], bs[3]}, func(cfg *config.Config) {
		cfg.StateFile = state
		cfg.Backends[0].Weight = 2
	})
	got := map[string]map[string]any{}
	for _, st := range mustAdmin(t, l.adminURL, "GET", "/admin/backends", "")["backends"].([]any) {
		m := st.(map[string]any)
		got[m["url"].(string)] = m
	}
	require.Len(t, got, 3)
	require.NotContains(t, got, b)
	require.Equal(t, 2.0, got[a]["weight"], "the file's edit")
	require.Equal(t, 3.0, got[a]["max_inflight"], "the admin's change the file left alone")
	require.Contains(t, got, c)
	require.Contains(t, got, d)
	require.Equal(t, "lc", mustAdmin(t, l.adminURL, "GET", "/admin/policy", "")["policy"])

	raw, err := os.ReadFile(state)
	require.NoError(t, err)
	var saved routing.State
	require.NoError(t, json.Unmarshal(raw, &saved))
	require.Equal(t, []config.Backend{{URL: a, Weight: 2, Protocol: "http1"}, {URL: d, Weight: 1, Protocol: "http1"}}, saved.File.Pools["default"].Backends,
		"the state records the file it was written against: rewritten at start against the edited file")
}
