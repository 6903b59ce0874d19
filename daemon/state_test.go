package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/internal/synth"
)

// A state file is restored at start: a version 1 file (lbd before pools)
// as the overlay it describes; one with a bad entry keeps the others; one
// that cannot be read at all is set aside and the config file alone runs.
func TestRestoreState(t *testing.T) {
	bs := startBackends(t, synth.Knobs{Name: "a"}, synth.Knobs{Name: "b"})
	a, b := bs[0].URL(), bs[1].URL()
	cases := []struct {
		name, content string
		aside         bool
		check         func(t *testing.T, l *testLBD)
	}{
		{name: "version 1", content: `{"version":1,"backends":[{"url":"` + a + `/","weight":3,"max_inflight":2,"draining":true}],
			"policy":"lc","sticky":{"enabled":true,"key":"ip"},"canary":{"backend":"","percent":0}}`,
			check: func(t *testing.T, l *testLBD) {
				st, err := l.sched().Status(t.Context())
				require.NoError(t, err)
				require.Equal(t, []string{a}, st.Backends, "b was removed when the state was written")
				require.Equal(t, "lc", st.Policy)
				s := l.sched().Lookup(a).Snapshot()
				require.Equal(t, 3, s.Weight)
				require.EqualValues(t, 2, s.MaxInflight)
				require.Equal(t, "draining", s.State)
			}},
		{name: "one bad entry", content: `{"version":2,"file":{"pools":{}},"overlay":{"pools":{"default":{"backends":{
			"` + a + `":{"draining":true},"` + b + `":{"weight":0}},"policy":{"policy":"lc","sticky":{"enabled":true,"key":"header:X Y"}}}}}}`,
			check: func(t *testing.T, l *testLBD) {
				require.Equal(t, "draining", l.sched().Lookup(a).Snapshot().State, "the good entry is kept")
				require.Equal(t, 1, l.sched().Lookup(b).Snapshot().Weight, "the bad one is left out")
				st, err := l.sched().Status(t.Context())
				require.NoError(t, err)
				require.Equal(t, "p2c-ewma", st.Policy, "a policy with a sticky key the config file refuses is left out")
			}},
		{name: "not json", content: `{"version":2,`, aside: true},
		{name: "other version", content: `{"version":9}`, aside: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "state.json")
			require.NoError(t, os.WriteFile(path, []byte(c.content), 0o600))
			l := startLBD(t, bs, func(cfg *config.Config) { cfg.StateFile = path })
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			var aside []string
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), "state.json.corrupt-") {
					aside = append(aside, e.Name())
				}
			}
			if !c.aside {
				require.Empty(t, aside)
				c.check(t, l)
				return
			}
			require.Len(t, aside, 1, "the unusable file is set aside")
			kept, err := os.ReadFile(filepath.Join(dir, aside[0]))
			require.NoError(t, err)
			require.Equal(t, c.content, string(kept), "kept as it was for the operator")
			require.Len(t, l.sched().Picker().Backends(), 2, "the config file alone runs")
		})
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	require.NoError(t, writeFileAtomic(path, []byte("one")))
	require.NoError(t, writeFileAtomic(path, []byte("two")))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "two", string(b))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file left behind")
	require.Error(t, writeFileAtomic(filepath.Join(dir, "missing", "state.json"), []byte("x")))
}
