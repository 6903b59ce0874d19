package config

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func problemsOf(t *testing.T, err error) []Problem {
	t.Helper()
	ve, ok := errors.AsType[*ValidationError](err)
	require.True(t, ok, "want a *ValidationError, got %v", err)
	return ve.Problems
}

// TestPoolsInheritTopLevel: a pool's omitted settings are the top-level
// ones, whatever the order of the keys in the file; backends and canary
// never carry over.
func TestPoolsInheritTopLevel(t *testing.T) {
	c, err := Parse([]byte(`{
		"pools": {"api": {"backends": [{"url": "http://127.0.0.1:9001"}], "health": {"path": "/status"}}},
		"backends": [{"url": "http://127.0.0.1:9000"}],
		"policy": "lc", "health": {"interval": "7s"}, "retries": {"max": 3},
		"canary": {"backend": "http://127.0.0.1:9000", "percent": 5}
	}`))
	require.NoError(t, err)
	api, ok := c.PoolConfig("api")
	require.True(t, ok)
	require.Equal(t, []Backend{{URL: "http://127.0.0.1:9001", Weight: 1, Protocol: "http1"}}, api.Backends)
	require.Equal(t, "lc", api.Policy)
	require.Equal(t, "/status", api.Health.Path, "its own key")
	require.Equal(t, Duration(7*time.Second), api.Health.Interval, "the top-level value, given after pools in the file")
	require.Equal(t, 3, api.Retries.Max)
	require.Equal(t, Canary{}, api.Canary)
	require.Equal(t, []string{"default", "api"}, c.PoolNames())
	def, _ := c.PoolConfig(DefaultPool)
	require.Len(t, def.Backends, 1)
}

func TestPoolAndRouteProblems(t *testing.T) {
	for _, tc := range []struct {
		name string
		file string
		want []Problem
	}{
		{"duplicate pool names", `{"pools": {"api": {}, "api": {}}}`,
			[]Problem{{"pools.api", "given twice; each name may appear once"}}},
		{"default is the top level", `{"pools": {"default": {}}}`,
			[]Problem{{"pools.default", `the top-level backends, policy, sticky, canary, health, breaker, outlier, warmup and retries are the pool "default"; set them there`}}},
		{"pool name alphabet", `{"pools": {"a b": {}}}`,
			[]Problem{{`pools["a b"]`, `"a b" may contain only letters, digits, '-', '_' and '.'`}}},
		{"pool settings have pool paths", `{"pools": {"api": {"policy": "fastest", "health": {"rise": 0}, "max_inflight": -1,
			"backends": [{"url": "http://a:1"}, {"url": "http://A:1/"}]}}}`, []Problem{
			{"pools.api.backends[1].url", `"http://A:1/" is the same backend as pools.api.backends[0] (both are http://a:1)`},
			{"pools.api.policy", `must be one of rr, wrr, lc, p2c-ewma, got "fastest"`},
			{"pools.api.health.rise", "must be at least 1, got 0"},
			{"pools.api.max_inflight", "must be between 0 (no cap of its own) and 1000000, got -1"},
		}},
		{"unknown pool", `{"routes": [{"match": {"path_prefix": "/api/"}, "pool": "api"}]}`,
			[]Problem{{"routes[0].pool", `"api" is not a pool; pools are default`}}},
		{"route after a catch-all", `{"pools": {"api": {}}, "routes": [{"match": {}, "pool": "default"},
			{"match": {"path_prefix": "/api/"}, "pool": "api"}]}`,
			[]Problem{{"routes[1]", "is never used: routes[0] before it matches every request"}}},
		{"same match twice", `{"routes": [{"match": {"host": "a.example"}, "pool": "default"},
			{"match": {"host": "a.example"}, "pool": "default"}]}`,
			[]Problem{{"routes[1]", "is never used: routes[0] before it has the same match"}}},
		{"bad matches", `{"routes": [{"name": "x y", "match": {"host": "a.*.com", "path_prefix": "api", "header": {"X Y": "1"},
			"method": ["get"]}, "pool": "default", "strip_prefix": true}, {"match": {"host": "*."}, "pool": ""}]}`, []Problem{
			{"routes[0].name", `"x y" may contain only letters, digits, '-', '_' and '.'`},
			{"routes[0].match.host", `"a.*.com" is not a host name or a wildcard such as "*.example.com" (no port, no other '*')`},
			{"routes[0].match.path_prefix", `must start with "/" and contain no spaces, got "api"`},
			{`routes[0].match.header["X Y"]`, `"X Y" is not a valid header name`},
			{"routes[0].match.method[0]", `"get" is not a method; write it in capitals, as "GET"`},
			{"routes[1].pool", `must name a pool ("default" or one of pools)`},
			{"routes[1].match.host", `"*." is not a host name or a wildcard such as "*.example.com" (no port, no other '*')`},
		}},
		{"duplicate route names", `{"routes": [{"name": "a", "match": {"host": "x"}, "pool": "default"},
			{"name": "a", "match": {"host": "y"}, "pool": "default"}]}`,
			[]Problem{{"routes[1].name", `"a" is already the name of routes[0]`}}},
		{"decode and validation problems in one run", `{"backends": [{"url": "http://a:1", "weight": -2}], "policy": 3,
			"health": {"interval": "x"}, "pools": {"api": {"wieght": 1}}}`, []Problem{
			{"policy", "want a string, got 3"},
			{"health.interval", `"x" is not a duration (examples: "250ms", "2s", "1m")`},
			{"pools.api.wieght", "unknown key"},
			{"backends[0].weight", "must be between 1 and 1000, got -2"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.file))
			require.Equal(t, tc.want, problemsOf(t, err))
		})
	}
}

func TestRouteNames(t *testing.T) {
	require.Equal(t, "api", Route{Name: "api"}.RouteName(3))
	require.Equal(t, "12", Route{}.RouteName(12))
}

func TestCloneCopiesPoolsAndRoutes(t *testing.T) {
	c, err := Parse([]byte(`{"pools": {"api": {"backends": [{"url": "http://a:1"}]}},
		"routes": [{"match": {"header": {"X": "1"}, "method": ["GET"]}, "pool": "api"}]}`))
	require.NoError(t, err)
	d := c.Clone()
	d.Pools["api"].Backends[0].Weight = 9
	d.Routes[0].Match.Header["X"] = "2"
	d.Routes[0].Match.Method[0] = "PUT"
	require.Equal(t, 1, c.Pools["api"].Backends[0].Weight)
	require.Equal(t, "1", c.Routes[0].Match.Header["X"])
	require.Equal(t, "GET", c.Routes[0].Match.Method[0])
}

func TestDiff(t *testing.T) {
	a, err := Parse([]byte(`{"backends": [{"url": "http://a:1"}], "health": {"interval": "3s"},
		"routes": [{"match": {"host": "x"}, "pool": "default"}]}`))
	require.NoError(t, err)
	b, err := Parse([]byte(`{"backends": [{"url": "http://b:1"}], "health": {"interval": "200ms"}, "admission": {"max_inflight": 2},
		"aimd": {"enabled": false}, "routes": [{"match": {"host": "y"}, "pool": "default"}],
		"pools": {"api": {"backends": [{"url": "http://c:1"}]}}}`))
	require.NoError(t, err)
	var paths []string
	for _, c := range Diff(a, b) {
		paths = append(paths, c.Path)
	}
	require.Equal(t, []string{"admission.max_inflight", "aimd.enabled", "health.interval", "pools", "routes[0].match.host"}, paths,
		"backend lists are the routing plan's; everything else is here")
	require.Equal(t, SettingChange{Path: "health.interval", From: "3s", To: "200ms"}, Diff(a, b)[2])
	require.Empty(t, Diff(a, a.Clone()))
}
