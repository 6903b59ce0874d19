package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
)

func fileWith(policy string, canary config.Canary, bs ...config.Backend) *config.Config {
	c := config.Default()
	c.Policy, c.Canary, c.Backends = policy, canary, bs
	return c
}

func be(url string, weight, capN int) config.Backend {
	return config.Backend{URL: url, Weight: weight, MaxInflight: capN, Protocol: "http1"}
}

func TestDiffFile(t *testing.T) {
	const a, b, c = "http://a:1", "http://b:1", "http://c:1"
	none := config.Canary{}
	cases := []struct {
		name       string
		prev, next *config.Config
		want       string
	}{
		{"same", fileWith("rr", none, be(a, 1, 0)), fileWith("rr", none, be(a, 1, 0)), "no routing change"},
		{"spelling is not a change", fileWith("rr", config.Canary{Backend: a + "/", Percent: 5}, be(a+"/", 1, 0)),
			fileWith("rr", config.Canary{Backend: a, Percent: 5}, config.Backend{URL: "HTTP://A:1", Weight: 1}), "no routing change"},
		{"a zero canary is no canary", fileWith("rr", config.Canary{Backend: a}, be(a, 1, 0)), fileWith("rr", none, be(a, 1, 0)), "no routing change"},
		{"add remove change", fileWith("rr", none, be(a, 1, 0), be(b, 1, 0)), fileWith("rr", none, be(b, 2, 0), be(c, 1, 3)),
			"+http://c:1 -http://a:1 ~http://b:1"},
		{"policy and canary", fileWith("rr", none, be(a, 1, 0)), fileWith("lc", config.Canary{Backend: a, Percent: 10}, be(a, 1, 0)),
			"policy=lc sticky=false/ip canary=http://a:1/10"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := diffFile(routingOf(tc.prev), routingOf(tc.next))
			require.Equal(t, tc.want, d.String())
			require.Equal(t, tc.want == "no routing change", d.empty())
		})
	}
	d := diffFile(routingOf(fileWith("rr", none, be(a, 1, 0))), routingOf(fileWith("rr", none, be(a, 2, 5))))
	require.Len(t, d.Changed, 1)
	require.True(t, d.Changed[0].weight())
	require.True(t, d.Changed[0].cap())
	require.False(t, d.Changed[0].transport())
}

// rebase applies the file's edits to a saved state as Reload applies them
// to the running actors: edits win, the rest of the admin changes stay.
func TestRebase(t *testing.T) {
	const a, b, c, d = "http://a:1", "http://b:1", "http://c:1", "http://d:1"
	saved := savedState{Version: stateVersion, Policy: "lc", Sticky: config.Sticky{Key: "ip"},
		Canary: config.Canary{Backend: b, Percent: 5},
		Backends: []savedBackend{
			{URL: a, Weight: 7, MaxInflight: 2, Draining: true}, // admin changed weight, cap and drain
			{URL: b, Weight: 1},
			{URL: c + "/", Weight: 3, MaxInflight: 9}, // added through the admin API
		}}
	prev := fileWith("rr", config.Canary{}, be(a, 1, 0), be(b, 1, 0))
	cases := []struct {
		name  string
		next  *config.Config
		check func(t *testing.T, st savedState)
	}{
		{"file unchanged: the state wins whole", prev, func(t *testing.T, st savedState) {
			require.Equal(t, saved, st)
		}},
		{"file removed a backend: it goes, and so does its canary", fileWith("rr", config.Canary{}, be(a, 1, 0)),
			func(t *testing.T, st savedState) {
				require.Equal(t, []string{a, c + "/"}, urlsOf(st))
				require.Equal(t, config.Canary{}, st.Canary)
				require.Equal(t, "lc", st.Policy)
			}},
		{"file added backends: new ones come, an admin-added one takes the file's settings",
			fileWith("rr", config.Canary{}, be(a, 1, 0), be(b, 1, 0), be(d, 4, 1), be(c, 2, 0)),
			func(t *testing.T, st savedState) {
				require.Equal(t, []string{a, b, c + "/", d}, urlsOf(st))
				require.Equal(t, savedBackend{URL: c + "/", Weight: 2, MaxInflight: 0, Protocol: "http1"}, st.Backends[2])
				require.Equal(t, savedBackend{URL: d, Weight: 4, MaxInflight: 1, Protocol: "http1"}, st.Backends[3])
				require.Equal(t, savedBackend{URL: a, Weight: 7, MaxInflight: 2, Draining: true}, st.Backends[0], "untouched by the file")
			}},
		{"file changed one setting: only that one moves", fileWith("rr", config.Canary{}, be(a, 1, 6), be(b, 1, 0)),
			func(t *testing.T, st savedState) {
				require.Equal(t, savedBackend{URL: a, Weight: 7, MaxInflight: 6, Draining: true}, st.Backends[0])
			}},
		{"file changed policy and canary", fileWith("wrr", config.Canary{Backend: a, Percent: 20}, be(a, 1, 0), be(b, 1, 0)),
			func(t *testing.T, st savedState) {
				require.Equal(t, "wrr", st.Policy)
				require.Equal(t, config.Canary{Backend: a, Percent: 20}, st.Canary)
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := saved
			in.Backends = append([]savedBackend(nil), saved.Backends...)
			st := rebase(in, diffFile(routingOf(prev), routingOf(tc.next)))
			tc.check(t, st)
			require.Equal(t, saved.Backends[0], in.Backends[0], "the input is not changed")
		})
	}
	// A backend the admin API removed stays removed when the file edits it.
	gone := saved
	gone.Backends = saved.Backends[1:]
	st := rebase(gone, diffFile(routingOf(prev), routingOf(fileWith("rr", config.Canary{}, be(a, 9, 0), be(b, 1, 0)))))
	require.Equal(t, []string{b, c + "/"}, urlsOf(st))
}

func urlsOf(st savedState) []string {
	var out []string
	for _, b := range st.Backends {
		out = append(out, b.URL)
	}
	return out
}
