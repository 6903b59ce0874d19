package routing

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
)

// parse returns a valid config from JSON, failing the test otherwise.
func parse(t testing.TB, s string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(s))
	require.NoError(t, err)
	return c
}

const twoPools = `{
	"backends": [{"url": "http://10.0.0.1:80"}, {"url": "http://10.0.0.2:80", "weight": 2}],
	"policy": "rr",
	"pools": {"api": {"backends": [{"url": "http://10.0.0.1:80", "name": "a1"}], "policy": "lc"}},
	"routes": [{"match": {"path_prefix": "/api/"}, "pool": "api"}, {"match": {}, "pool": "default"}]
}`

func urls(p *Pool) []string {
	var out []string
	for _, b := range p.Backends {
		out = append(out, b.URL)
	}
	return out
}

func mustApply(t *testing.T, file *config.Config, ov Overlay, disc Discovered, cs ...Change) Overlay {
	t.Helper()
	for _, c := range cs {
		var err error
		ov, err = Apply(Effective(file, ov, disc), ov, c)
		require.NoError(t, err, "%+v", c)
	}
	return ov
}

func TestEffectiveOrdersSourcesAndKeepsPoolsApart(t *testing.T) {
	file := parse(t, twoPools)
	disc := Discovered{"default": {"dns:a:web": {{URL: "http://10.0.0.9:80", Weight: 1}, {URL: "http://10.0.0.2:80", Weight: 1}}}}
	ov := mustApply(t, file, Overlay{}, disc,
		Change{Op: OpAdd, Backend: config.Backend{URL: "http://10.0.0.7:80/"}},
		Change{Op: OpDrain, Pool: "api", URL: "http://10.0.0.1"},
	)
	tab := Effective(file, ov, disc)
	def, _ := tab.Pool("default")
	require.Equal(t, []string{"http://10.0.0.1:80", "http://10.0.0.2:80", "http://10.0.0.9:80", "http://10.0.0.7:80"}, urls(def),
		"file first, then discovered members the file does not list, then admin additions")
	b, _ := def.Backend("http://10.0.0.2:80")
	require.Equal(t, SourceConfig, b.Source, "the file's entry wins over a discovered one")
	b, _ = def.Backend("http://10.0.0.9:80")
	require.Equal(t, "dns:a:web", b.Source)
	b, _ = def.Backend("http://10.0.0.1:80")
	require.False(t, b.Draining, "a drain in pool api leaves pool default serving")
	api, _ := tab.Pool("api")
	b, _ = api.Backend("http://10.0.0.1:80")
	require.True(t, b.Draining)
	require.Equal(t, "a1", b.Name)
	require.Equal(t, "lc", api.Policy)
	require.Len(t, tab.Routes, 2)
}

func TestApply(t *testing.T) {
	file := parse(t, twoPools)
	disc := Discovered{"default": {"dns:srv:x": {{URL: "http://10.0.0.9:80", Weight: 1}}}}
	on := true
	for _, tc := range []struct {
		name    string
		changes []Change
		err     error  // of the last change
		msg     string // its text
		check   func(t *testing.T, def, api *Pool)
	}{
		{name: "add then duplicate", changes: []Change{
			{Op: OpAdd, Backend: config.Backend{URL: "http://10.0.0.5:80", Weight: 3}},
			{Op: OpAdd, Backend: config.Backend{URL: "HTTP://10.0.0.5"}},
		}, err: ErrExists, msg: "backend already exists: http://10.0.0.5:80 is in pool default (source admin)"},
		{name: "add invalid", changes: []Change{{Op: OpAdd, Backend: config.Backend{URL: "ftp://x", Weight: 2000}}},
			err: ErrInvalid, msg: `url: "ftp://x" has scheme "ftp"; only http and https are supported; weight: must be between 1 and 1000, got 2000`},
		{name: "unknown pool", changes: []Change{{Op: OpDrain, Pool: "web", URL: "http://10.0.0.1"}},
			err: ErrUnknownPool, msg: `no such pool "web"; pools are default, api`},
		{name: "unknown backend", changes: []Change{{Op: OpDrain, Pool: "api", URL: "http://10.0.0.2"}},
			err: ErrNotFound, msg: "no such backend: http://10.0.0.2:80 in pool api"},
		{name: "remove a discovered member", changes: []Change{{Op: OpRemove, URL: "http://10.0.0.9"}}, err: ErrOwned},
		{name: "drain, cap and weight a discovered member", changes: []Change{
			{Op: OpDrain, URL: "http://10.0.0.9"}, {Op: OpCap, URL: "http://10.0.0.9", N: 4}, {Op: OpWeight, URL: "http://10.0.0.9", N: 5},
		}, check: func(t *testing.T, def, _ *Pool) {
			b, _ := def.Backend("http://10.0.0.9:80")
			require.Equal(t, Backend{URL: "http://10.0.0.9:80", Weight: 5, MaxInflight: 4, Protocol: "http1", Draining: true, Source: "dns:srv:x"}, b)
		}},
		{name: "remove a file backend, then add it back", changes: []Change{
			{Op: OpRemove, URL: "http://10.0.0.2"},
			{Op: OpAdd, Backend: config.Backend{URL: "http://10.0.0.2", Weight: 7}},
		}, check: func(t *testing.T, def, _ *Pool) {
			b, ok := def.Backend("http://10.0.0.2:80")
			require.True(t, ok)
			require.Equal(t, 7, b.Weight)
			require.Equal(t, SourceConfig, b.Source)
		}},
		{name: "weight and cap ranges", changes: []Change{{Op: OpCap, URL: "http://10.0.0.1", N: config.MaxInflight + 1}},
			err: ErrInvalid, msg: "max_inflight: must be between 0 (no cap) and 1000000, got 1000001"},
		{name: "policy keeps what is not given", changes: []Change{
			{Op: OpPolicy, Pool: "api", StickyEnabled: &on, StickyKey: "header:X-User"},
		}, check: func(t *testing.T, _, api *Pool) {
			require.Equal(t, "lc", api.Policy)
			require.Equal(t, config.Sticky{Enabled: true, Key: "header:X-User"}, api.Sticky)
		}},
		{name: "a sticky key the config file would refuse", changes: []Change{{Op: OpPolicy, StickyKey: "header:X Y"}},
			err: ErrInvalid, msg: `sticky.key: "X Y" is not a valid header name (letters, digits and !#$%&'*+-.^_` + "`|~ only)"},
		{name: "canary set and cleared", changes: []Change{
			{Op: OpCanary, Canary: config.Canary{Backend: "http://10.0.0.2", Percent: 10}},
		}, check: func(t *testing.T, def, _ *Pool) {
			require.Equal(t, config.Canary{Backend: "http://10.0.0.2:80", Percent: 10}, def.Canary)
		}},
		{name: "canary on a backend of another pool", changes: []Change{
			{Op: OpCanary, Pool: "api", Canary: config.Canary{Backend: "http://10.0.0.2", Percent: 10}},
		}, err: ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ov := Overlay{}
			var err error
			for i, c := range tc.changes {
				next, e := Apply(Effective(file, ov, disc), ov, c)
				if i < len(tc.changes)-1 {
					require.NoError(t, e)
				}
				ov, err = next, e
			}
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
				if tc.msg != "" {
					require.EqualError(t, err, tc.msg)
				}
				return
			}
			require.NoError(t, err)
			tab := Effective(file, ov, disc)
			def, _ := tab.Pool("default")
			api, _ := tab.Pool("api")
			tc.check(t, def, api)
		})
	}
}

func TestApplyLeavesTheOverlayUnchanged(t *testing.T) {
	file := parse(t, twoPools)
	ov := mustApply(t, file, Overlay{}, nil, Change{Op: OpWeight, URL: "http://10.0.0.1", N: 3})
	before := ov.Clone()
	_, err := Apply(Effective(file, ov, nil), ov, Change{Op: OpWeight, URL: "http://10.0.0.1", N: 9})
	require.NoError(t, err)
	_, err = Apply(Effective(file, ov, nil), ov, Change{Op: OpWeight, URL: "http://10.0.0.1", N: 0})
	require.Error(t, err)
	require.Equal(t, before, ov)
}

func TestUndoLeavesNoTrace(t *testing.T) {
	file := parse(t, twoPools)
	ov := mustApply(t, file, Overlay{}, nil,
		Change{Op: OpDrain, URL: "http://10.0.0.1"}, Change{Op: OpUndrain, URL: "http://10.0.0.1"},
		Change{Op: OpAdd, Backend: config.Backend{URL: "http://10.0.0.5"}}, Change{Op: OpRemove, URL: "http://10.0.0.5"})
	require.Empty(t, ov.Pools, "drain+undrain and add+remove leave nothing to persist")
}

func TestRebase(t *testing.T) {
	prev := parse(t, `{"backends": [{"url": "http://a:1", "weight": 1}, {"url": "http://b:1"}, {"url": "http://c:1"}],
		"policy": "rr", "canary": {"backend": "http://b:1", "percent": 5}}`)
	ov := mustApply(t, prev, Overlay{}, nil,
		Change{Op: OpWeight, URL: "http://a:1", N: 5}, // the file changes a's weight: the file wins
		Change{Op: OpCap, URL: "http://a:1", N: 9},    // the file leaves a's cap alone: the admin change stays
		Change{Op: OpDrain, URL: "http://a:1"},
		Change{Op: OpRemove, URL: "http://b:1"},                                  // the file changes b: it stays removed
		Change{Op: OpDrain, URL: "http://c:1"},                                   // the file removes c: the drain goes with it
		Change{Op: OpAdd, Backend: config.Backend{URL: "http://d:1", Weight: 4}}, // the file adds d: the file's settings
		Change{Op: OpDrain, URL: "http://d:1"},
		Change{Op: OpAdd, Backend: config.Backend{URL: "http://e:1"}}, // untouched by the file
		Change{Op: OpPolicy, Policy: "lc"},                            // the file leaves the policy: stays
		Change{Op: OpCanary, Canary: config.Canary{}},                 // the file changes the canary: file wins
	)
	next := parse(t, `{"backends": [{"url": "http://a:1", "weight": 2}, {"url": "http://b:1", "weight": 3}, {"url": "http://d:1", "weight": 2}],
		"policy": "rr", "canary": {"backend": "http://a:1", "percent": 7}}`)
	got := Effective(next, Rebase(ov, FileOf(prev), FileOf(next)), nil)
	def, _ := got.Pool("default")
	require.Equal(t, []Backend{
		{URL: "http://a:1", Weight: 2, MaxInflight: 9, Protocol: "http1", Draining: true, Source: SourceConfig},
		{URL: "http://d:1", Weight: 2, Protocol: "http1", Draining: true, Source: SourceConfig},
		{URL: "http://e:1", Weight: 1, Protocol: "http1", Source: SourceAdmin},
	}, def.Backends)
	require.Equal(t, "lc", def.Policy)
	require.Equal(t, config.Canary{Backend: "http://a:1", Percent: 7}, def.Canary)

	gone := parse(t, `{"backends": []}`)
	require.Empty(t, Rebase(mustApply(t, twoPoolsCfg(t), Overlay{}, nil, Change{Op: OpDrain, Pool: "api", URL: "http://10.0.0.1"}),
		FileOf(twoPoolsCfg(t)), FileOf(gone)).Pools, "a pool the file no longer has takes its changes with it")
}

func twoPoolsCfg(t *testing.T) *config.Config { return parse(t, twoPools) }

func TestDiff(t *testing.T) {
	prev := parse(t, twoPools)
	next := parse(t, `{
		"backends": [{"url": "http://10.0.0.1:80", "weight": 3}, {"url": "http://10.0.0.3:80"}],
		"policy": "rr", "health": {"interval": "1s"},
		"pools": {"web": {"backends": [{"url": "http://10.0.0.4:80"}]}},
		"routes": [{"match": {}, "pool": "web"}]
	}`)
	ov := mustApply(t, prev, Overlay{}, nil, Change{Op: OpDrain, URL: "http://10.0.0.1"})
	plan := Diff(Effective(prev, ov, nil), Effective(next, Rebase(ov, FileOf(prev), FileOf(next)), nil))
	require.Equal(t, []string{"api"}, plan.PoolsRemoved)
	require.Equal(t, []string{"web"}, plan.PoolsAdded)
	var steps []string
	for _, s := range plan.Backends {
		steps = append(steps, s.Pool+" "+s.Action+" "+s.URL)
	}
	require.Equal(t, []string{
		"default removed http://10.0.0.2:80",
		"default updated http://10.0.0.1:80",
		"default added http://10.0.0.3:80",
		"web added http://10.0.0.4:80",
	}, steps)
	require.Equal(t, map[string][2]any{"weight": {1, 3}}, plan.Backends[1].Changes, "the drain is kept")
	require.Equal(t, []PoolStep{{Pool: "default", Settings: []string{"health"}}}, plan.Pools)

	replaced := parse(t, `{"backends": [{"url": "http://10.0.0.1:80", "protocol": "h2c"}, {"url": "http://10.0.0.2:80", "weight": 2}],
		"policy": "rr", "pools": {"api": {"backends": [{"url": "http://10.0.0.1:80", "name": "a1"}], "policy": "lc"}},
		"routes": [{"match": {"path_prefix": "/api/"}, "pool": "api"}, {"match": {}, "pool": "default"}]}`)
	plan = Diff(Effective(prev, Overlay{}, nil), Effective(replaced, Overlay{}, nil))
	require.Len(t, plan.Backends, 1)
	require.Equal(t, Replaced, plan.Backends[0].Action, "a new protocol needs a new actor")
	require.Equal(t, 2, plan.Kept)
	require.True(t, Diff(Effective(prev, Overlay{}, nil), Effective(prev, Overlay{}, nil)).Empty())
}

func TestStateRoundTripAndBadEntries(t *testing.T) {
	file := parse(t, twoPools)
	ov := mustApply(t, file, Overlay{}, nil,
		Change{Op: OpDrain, Pool: "api", URL: "http://10.0.0.1"},
		Change{Op: OpAdd, Backend: config.Backend{URL: "http://10.0.0.5", Weight: 2}},
		Change{Op: OpPolicy, Policy: "wrr"})
	st := State{Overlay: ov, File: FileOf(file)}
	back, probs, err := DecodeState(st.Encode(), FileOf(file))
	require.NoError(t, err)
	require.Empty(t, probs)
	require.Equal(t, ov, back.Overlay)
	require.Equal(t, FileOf(file), back.File)

	// One bad entry is dropped and named; the rest is kept.
	data := []byte(`{"version": 2, "file": {"pools": {}}, "overlay": {"pools": {"default": {
		"policy": {"policy": "lc", "sticky": {"enabled": true, "key": "header:X Y"}},
		"backends": {"http://10.0.0.1:80": {"draining": true}, "http://10.0.0.2:80": {"weight": 0}, "HTTP://x": {"draining": true}}}}}}`)
	back, probs, err = DecodeState(data, FileOf(file))
	require.NoError(t, err)
	require.Equal(t, map[string]BackendOverlay{"http://10.0.0.1:80": {Draining: ptrTo(true)}}, back.Overlay.Pools["default"].Backends)
	require.Nil(t, back.Overlay.Pools["default"].Policy)
	require.Len(t, probs, 3)
	require.Contains(t, probs[0], `overlay.pools.default.policy: sticky.key: "X Y" is not a valid header name`)

	for _, bad := range []string{`not json`, `{"version": 9}`, `{"version": 2, "overlay": {}, "extra": 1}`} {
		_, _, err := DecodeState([]byte(bad), FileOf(file))
		require.True(t, errors.Is(err, ErrCorrupt), bad)
	}
}

// TestStateVersion1 reads the format of lbd before pools: the running set
// of the one pool, as an overlay over the file it recorded.
func TestStateVersion1(t *testing.T) {
	file := parse(t, `{"backends": [{"url": "http://a:1"}, {"url": "http://b:1"}], "policy": "rr"}`)
	v1 := []byte(`{"version": 1, "policy": "lc", "sticky": {"enabled": false, "key": "ip"}, "canary": {"backend": "", "percent": 0},
		"backends": [{"url": "http://a:1", "weight": 4, "max_inflight": 0, "draining": true, "protocol": "http1"},
		             {"url": "http://n:1", "weight": 1, "max_inflight": 3, "draining": false}],
		"file": {"backends": [{"url": "http://a:1", "weight": 1, "max_inflight": 0, "protocol": "http1"},
		                      {"url": "http://b:1", "weight": 1, "max_inflight": 0, "protocol": "http1"}],
		         "policy": "rr", "sticky": {"enabled": false, "key": "ip"}, "canary": {"backend": "", "percent": 0}}}`)
	st, probs, err := DecodeState(v1, FileOf(file))
	require.NoError(t, err)
	require.Empty(t, probs)
	def, _ := Effective(file, Rebase(st.Overlay, st.File, FileOf(file)), nil).Pool("default")
	require.Equal(t, []Backend{
		{URL: "http://a:1", Weight: 4, Protocol: "http1", Draining: true, Source: SourceConfig},
		{URL: "http://n:1", Weight: 1, MaxInflight: 3, Protocol: "http1", Source: SourceAdmin},
	}, def.Backends, "b was removed through the admin API, n added")
	require.Equal(t, "lc", def.Policy)
}

func TestOverlayKeysRoundTrip(t *testing.T) {
	file := parse(t, twoPools)
	ov := mustApply(t, file, Overlay{}, nil,
		Change{Op: OpDrain, Pool: "api", URL: "http://10.0.0.1"},
		Change{Op: OpAdd, Backend: config.Backend{URL: "http://10.0.0.5", Weight: 2}},
		Change{Op: OpRemove, URL: "http://10.0.0.2"},
		Change{Op: OpPolicy, Policy: "wrr"},
		Change{Op: OpCanary, Canary: config.Canary{Backend: "http://10.0.0.1", Percent: 5}})
	keys := ov.Keys()
	require.Contains(t, keys, "state/pools/api/backends/http:%2F%2F10.0.0.1:80")
	require.Equal(t, `{"removed":true}`, string(keys["state/pools/default/backends/http:%2F%2F10.0.0.2:80"]))
	require.Contains(t, keys, "state/pools/default/policy")
	back, probs := OverlayFromKeys(keys)
	require.Empty(t, probs)
	require.Equal(t, ov, back)

	keys["state/pools/default/policy"] = []byte(`{"policy":"fastest","sticky":{"enabled":false,"key":"ip"}}`)
	keys["state/pools/default/backends/http:%2F%2FX:1"] = []byte(`{"draining":true}`)
	keys["state/other"] = []byte(`{}`)
	back, probs = OverlayFromKeys(keys)
	require.Len(t, probs, 3, "%v", probs)
	require.Nil(t, back.Pools["default"].Policy, "the bad entry is left out")
	require.NotNil(t, back.Pools["api"].Backends["http://10.0.0.1:80"].Draining, "the others are kept")
}
