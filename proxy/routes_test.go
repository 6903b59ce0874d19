package proxy

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
)

func testRoutes(t testing.TB, rs []config.Route, names ...string) (*Handler, *Routes) {
	t.Helper()
	h := New(Options{Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
	pools := map[string]*Pool{}
	for _, n := range append(names, config.DefaultPool) {
		pools[n] = NewPool(n, noPicker{}, PoolSettings{})
	}
	return h, h.NewRoutes(rs, pools)
}

func TestRouteMatching(t *testing.T) {
	rs := []config.Route{
		{Name: "api-get", Match: config.RouteMatch{Host: "api.example.com", PathPrefix: "/v1/", Method: []string{"GET", "HEAD"}}, Pool: "api"},
		{Match: config.RouteMatch{Host: "*.example.com", Header: map[string]string{"x-pool": "canary"}}, Pool: "canary"},
		{Match: config.RouteMatch{Host: "*.Example.com"}, Pool: "web"},
		{Match: config.RouteMatch{PathPrefix: "/static/"}, Pool: "web"},
	}
	_, table := testRoutes(t, rs, "api", "canary", "web")
	for _, tc := range []struct {
		method, target, host string
		header               map[string]string
		want                 string // route name; "" for no route
	}{
		{"GET", "/v1/users", "api.example.com", nil, "api-get"},
		{"GET", "/v1/users", "API.Example.COM:8443", nil, "api-get"}, // case and port do not matter
		{"POST", "/v1/users", "api.example.com", nil, "2"},           // every field must match: falls to the wildcard
		{"GET", "/v2/users", "api.example.com", nil, "2"},
		{"GET", "/", "a.b.example.com", map[string]string{"X-Pool": "canary"}, "1"},
		{"GET", "/", "a.example.com", map[string]string{"X-Pool": "Canary"}, "2"}, // header values are exact
		{"GET", "/", "example.com", nil, ""},                                      // *.example.com is not example.com
		{"GET", "/", "badexample.com", nil, ""},
		{"GET", "/static/app.js", "[::1]:3030", nil, "3"},
		{"GET", "/staticx", "localhost", nil, ""},
	} {
		t.Run(tc.method+" "+tc.host+tc.target, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.target, nil)
			r.Host = tc.host
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			got := table.match(r)
			if tc.want == "" {
				require.Nil(t, got)
				return
			}
			require.NotNil(t, got)
			require.Equal(t, tc.want, got.name)
		})
	}
}

func TestNoRoutesMeansPoolDefault(t *testing.T) {
	_, table := testRoutes(t, nil)
	got := table.match(httptest.NewRequest("GET", "/anything", nil))
	require.NotNil(t, got)
	require.Equal(t, config.DefaultPool, got.pool.Name())
}

func TestStripPrefix(t *testing.T) {
	for _, tc := range []struct{ prefix, path, raw, wantPath, wantRaw string }{
		{"/api/", "/api/v1/users", "", "/v1/users", ""},
		{"/api/", "/api/", "", "/", ""},
		{"/api", "/api", "", "/", ""},
		{"/api", "/api/v1", "", "/v1", ""},
		{"/api", "/apix", "", "/x", ""},
		{"/api/", "/api/a b", "/api/a%20b", "/a b", "/a%20b"},
		{"/a b/", "/a b/c", "/a%20b/c", "/c", ""}, // the escaped prefix differs: net/url escapes again
	} {
		c := &route{pathPrefix: tc.prefix, stripPrefix: true}
		p, raw := c.strip(tc.path, tc.raw)
		require.Equal(t, tc.wantPath, p, tc)
		require.Equal(t, tc.wantRaw, raw, tc)
	}
}

func TestNoRouteIs404(t *testing.T) {
	h, table := testRoutes(t, []config.Route{{Match: config.RouteMatch{PathPrefix: "/api/"}, Pool: config.DefaultPool}})
	h.SetRoutes(table)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/other", nil))
	require.Equal(t, http.StatusNotFound, rec.Code)
	require.Equal(t, RejectNoRoute, rec.Header().Get("X-Lbd-Reject"))
	require.NotEmpty(t, rec.Header().Get("X-Request-Id"))
	require.Equal(t, 1.0, testutil.ToFloat64(h.metrics.rejected.WithLabelValues(RejectNoRoute)))
}

// BenchmarkRouteMatch is route matching on the hot path with five routes,
// the matching one last: it must report 0 allocs/op.
//
//	go test -run '^$' -bench RouteMatch -benchmem ./proxy/
func BenchmarkRouteMatch(b *testing.B) {
	rs := []config.Route{
		{Match: config.RouteMatch{Host: "a.example.com"}, Pool: "p"},
		{Match: config.RouteMatch{Host: "*.b.example.com", PathPrefix: "/x/"}, Pool: "p"},
		{Match: config.RouteMatch{Header: map[string]string{"X-Pool": "c"}}, Pool: "p"},
		{Match: config.RouteMatch{PathPrefix: "/api/", Method: []string{"POST"}}, Pool: "p"},
		{Match: config.RouteMatch{PathPrefix: "/"}, Pool: "p"},
	}
	_, table := testRoutes(b, rs, "p")
	r := httptest.NewRequest("GET", "/api/v1/users", nil)
	r.Host = "www.example.com:3030"
	b.ReportAllocs()
	for b.Loop() {
		if table.match(r) == nil {
			b.Fatal("no route")
		}
	}
}
