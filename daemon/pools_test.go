package daemon

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/internal/synth"
)

// twoServices is one lbd in front of an API (host api.test or path /api/,
// pool "api" over a and b) and a web app (everything else, pool "default"
// over c), with the URL of b in both pools.
func twoServices(t *testing.T) (*testLBD, []*synth.Running) {
	t.Helper()
	bs := startBackends(t, synth.Knobs{Name: "a"}, synth.Knobs{Name: "b"}, synth.Knobs{Name: "c"})
	l := startLBD(t, bs[2:], func(c *config.Config) {
		c.Backends = append(c.Backends, config.Backend{URL: bs[1].URL(), Weight: 1, Protocol: "http1"})
		api, _ := c.PoolConfig(config.DefaultPool)
		api.Backends = []config.Backend{{URL: bs[0].URL(), Weight: 1, Protocol: "http1"}, {URL: bs[1].URL(), Weight: 1, Protocol: "http1"}}
		api.Policy = "rr"
		api.Health.Path = "/healthz"
		c.Pools = map[string]config.Pool{"api": api}
		c.Routes = []config.Route{
			{Name: "api-host", Match: config.RouteMatch{Host: "api.test"}, Pool: "api"},
			{Name: "api-path", Match: config.RouteMatch{PathPrefix: "/api/"}, Pool: "api", StripPrefix: true},
			{Name: "web", Match: config.RouteMatch{Host: "*.web.test"}, Pool: config.DefaultPool},
			{Name: "web-get", Match: config.RouteMatch{Method: []string{"GET", "HEAD"}}, Pool: config.DefaultPool},
		}
	})
	return l, bs
}

func (l *testLBD) send(t *testing.T, method, host, path string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, l.url+path, nil)
	require.NoError(t, err)
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp
}

func TestOneLBDServesTwoServicesByHostAndPath(t *testing.T) {
	l, _ := twoServices(t)
	seen := map[string]map[string]int{}
	count := func(route, method, host, path string) {
		resp := l.send(t, method, host, path)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s %s %s", method, host, path)
		if seen[route] == nil {
			seen[route] = map[string]int{}
		}
		seen[route][resp.Header.Get("X-Backend")]++
	}
	for range 4 {
		count("api-host", "GET", "api.test", "/anything")
		count("api-path", "GET", "example.test", "/api/v1/users")
		count("web", "POST", "www.web.test", "/form")
		count("web-get", "GET", "example.test", "/")
	}
	require.Equal(t, 8, seen["api-host"]["a"]+seen["api-path"]["a"]+seen["api-host"]["b"]+seen["api-path"]["b"], "only the api pool's a and b")
	require.Equal(t, 4, seen["api-host"]["a"]+seen["api-path"]["a"], "rr over the api pool: %v", seen)
	require.Subset(t, []string{"b", "c"}, keys(seen["web"]), "the default pool is c and b")
	require.Subset(t, []string{"b", "c"}, keys(seen["web-get"]))

	resp := l.send(t, "POST", "example.test", "/form")
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "no route takes a POST to another host")
	require.Equal(t, "no-route", resp.Header.Get("X-Lbd-Reject"))

	m := scrape(t, l.adminURL)
	routes := map[string]float64{}
	for _, s := range m["lbd_route_requests_total"].GetMetric() {
		routes[labelOf(s, "route")] = s.GetCounter().GetValue()
	}
	require.Equal(t, map[string]float64{"api-host": 4, "api-path": 4, "web": 4, "web-get": 4}, routes)
	pools := map[string]float64{}
	for _, s := range m["lbd_requests_total"].GetMetric() {
		pools[labelOf(s, "pool")+" "+labelOf(s, "code")] += s.GetCounter().GetValue()
	}
	require.Equal(t, 8.0, pools["api 200"])
	require.Equal(t, 8.0, pools["default 200"])
	require.Equal(t, 1.0, pools["none 404"])
}

func keys(m map[string]int) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// The same URL in two pools is two backend actors: a drain in one pool
// leaves the other serving, and each pool's admin calls take pool=NAME.
func TestPoolsShareAURLIndependently(t *testing.T) {
	l, bs := twoServices(t)
	b := bs[1].URL()
	mustAdmin(t, l.adminURL, "POST", "/admin/drain?pool=api&url="+b, "")
	require.Equal(t, "draining", l.sched("api").Lookup(b).Snapshot().State)
	require.Equal(t, "healthy", l.sched().Lookup(b).Snapshot().State, "the default pool's b serves on")
	for range 6 {
		resp := l.send(t, "GET", "api.test", "/")
		require.Equal(t, "a", resp.Header.Get("X-Backend"), "api's b is drained")
	}

	var pools struct {
		Pools []struct {
			Name, Policy       string
			Backends, Eligible int
			Routes             []struct{ Name string }
		} `json:"pools"`
	}
	getJSON(t, l.adminURL+"/admin/pools", &pools)
	require.Len(t, pools.Pools, 2)
	require.Equal(t, "default", pools.Pools[0].Name)
	require.Equal(t, 2, pools.Pools[0].Eligible)
	require.Equal(t, "api", pools.Pools[1].Name)
	require.Equal(t, "rr", pools.Pools[1].Policy)
	require.Equal(t, 1, pools.Pools[1].Eligible)
	require.Len(t, pools.Pools[1].Routes, 2)

	var list struct {
		Backends []struct{ URL, Pool, State, Source string } `json:"backends"`
	}
	getJSON(t, l.adminURL+"/admin/backends?pool=api", &list)
	require.Len(t, list.Backends, 2)
	require.Equal(t, "api", list.Backends[1].Pool)
	require.Equal(t, "draining", list.Backends[1].State)
	require.Equal(t, "config", list.Backends[1].Source)

	code, m := adminCall(t, l.adminURL, "POST", "/admin/drain?pool=web&url="+b, "")
	require.Equal(t, http.StatusNotFound, code)
	require.Contains(t, m["error"], `pool: no such pool "web"; pools are default, api`)
	mustAdmin(t, l.adminURL, "POST", "/admin/policy?pool=api&name=lc", "")
	require.Equal(t, "lc", mustAdmin(t, l.adminURL, "GET", "/admin/policy?pool=api", "")["policy"])
	require.Equal(t, "p2c-ewma", mustAdmin(t, l.adminURL, "GET", "/admin/policy", "")["policy"], "the other pool keeps its policy")

	var actors struct {
		Actors []struct{ Name, Kind string } `json:"actors"`
	}
	getJSON(t, l.adminURL+"/debug/actors", &actors)
	var schedulers, healths []string
	for _, a := range actors.Actors {
		switch a.Kind {
		case "scheduler":
			schedulers = append(schedulers, a.Name)
		case "health":
			healths = append(healths, a.Name)
		}
	}
	require.ElementsMatch(t, []string{"scheduler", "scheduler:api"}, schedulers, "each pool's scheduler is visible")
	require.ElementsMatch(t, []string{"health-checker", "health-checker:api"}, healths)
}

// A pool's own settings are in effect for it alone: a cap of its own, and
// its own health checks.
func TestPoolSettingsApplyToThatPool(t *testing.T) {
	bs := startBackends(t, synth.Knobs{Name: "a"}, synth.Knobs{Name: "hangs", HangRate: 1})
	l := startLBD(t, bs[:1], func(c *config.Config) {
		api, _ := c.PoolConfig(config.DefaultPool)
		api.Backends = []config.Backend{{URL: bs[1].URL(), Weight: 1, Protocol: "http1"}}
		api.MaxInflight = 1
		api.Health.Disabled = true
		c.Pools = map[string]config.Pool{"api": api}
		c.Routes = []config.Route{{Match: config.RouteMatch{PathPrefix: "/api/"}, Pool: "api"}, {Match: config.RouteMatch{}, Pool: "default"}}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, l.url+"/api/held", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	eventually(t, 5*time.Second, "the api backend holds one request", func() bool { return bs[1].Server.Inflight() == 1 })
	resp := l.send(t, "GET", "x", "/api/second")
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "the api pool's own cap of 1")
	require.Equal(t, "overload", resp.Header.Get("X-Lbd-Reject"))
	require.Equal(t, http.StatusOK, l.send(t, "GET", "x", "/web").StatusCode, "the default pool has no such cap")
	cancel()
	<-done

	api, _ := l.d.owner.pool("api")
	require.Nil(t, api.health, "health.disabled in the api pool only")
	def, _ := l.d.owner.pool("default")
	require.NotNil(t, def.health)
}
