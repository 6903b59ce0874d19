package daemon

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/internal/synth"
)

// writeConfig writes cfg as a config file.
func writeConfig(t *testing.T, path string, cfg *config.Config) {
	t.Helper()
	b, err := json.Marshal(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o600))
}

// Reload under load: 20 SIGHUP-style reloads alternating between configs
// with and without a third backend, broken files in between, while GETs
// flow. Each time the third backend joins it is probed and takes traffic
// before the next reload removes it, mostly with requests in flight (every
// backend answers in 2ms): no client sees an error, broken files change
// nothing, and every reload is counted by result.
func TestReloadUnderLoad(t *testing.T) {
	slow := func(name string) synth.Knobs { return synth.Knobs{Name: name, Latency: 2 * time.Millisecond} }
	bs := startBackends(t, slow("a"), slow("b"), slow("c"))
	cSrv := bs[2].Server
	fast := func(c *config.Config) {
		c.Health.Interval, c.Health.Timeout = config.Duration(50*time.Millisecond), config.Duration(40*time.Millisecond)
		c.Health.Rise = 1
	}
	two, three := testConfig(bs[:2], fast), testConfig(bs, fast)
	three.Backends[2].Weight = 2
	three.Policy = "lc"
	dir := t.TempDir()
	paths := map[string]string{"two": filepath.Join(dir, "two.json"), "three": filepath.Join(dir, "three.json"),
		"broken": filepath.Join(dir, "broken.json"), "invalid": filepath.Join(dir, "invalid.json")}
	writeConfig(t, paths["two"], two)
	writeConfig(t, paths["three"], three)
	require.NoError(t, os.WriteFile(paths["broken"], []byte(`{"backends": [`), 0o600))
	require.NoError(t, os.WriteFile(paths["invalid"], []byte(`{"backends":[{"url":"ftp://x","weight":1}],"polcy":"rr"}`), 0o600))

	l := startLBD(t, bs[:2], fast)
	status := func() (string, []string) {
		st, err := l.sched().Status(context.Background())
		require.NoError(t, err)
		return st.Policy, st.Backends
	}
	actors := l.d.registry.Len()
	stop := make(chan struct{})
	totals := loadWhile(l.url, stop)
	failures, busyAtRemove := 0, 0
	for i := range 20 {
		name, wantPolicy, want := "three", "lc", 3
		if i%2 == 1 {
			name, wantPolicy, want = "two", "p2c-ewma", 2
			if cSrv.Inflight() > 0 {
				busyAtRemove++
			}
		}
		before := cSrv.Requests()
		_, err := l.reloadFile(t, paths[name])
		require.NoError(t, err)
		policy, backends := status()
		require.Equal(t, wantPolicy, policy, "reload %d (%s)", i, name)
		require.Len(t, backends, want, "reload %d (%s)", i, name)
		if i%5 == 2 {
			for _, bad := range []string{"broken", "invalid"} {
				_, err := l.reloadFile(t, paths[bad])
				require.Error(t, err)
				failures++
				p2, b2 := status()
				require.Equal(t, policy, p2, "a %s file changes nothing", bad)
				require.Equal(t, backends, b2, "a %s file changes nothing", bad)
			}
		}
		if name == "three" {
			waitFor(t, 5*time.Second, "the added backend to take traffic", func() bool { return cSrv.Requests() > before })
		}
	}
	close(stop)
	tot := <-totals
	require.Zero(t, tot.errors, "transport errors")
	require.Empty(t, tot.other, "non-200 answers")
	require.Positive(t, tot.ok)
	require.Equal(t, 20.0, testutil.ToFloat64(l.d.reloads.WithLabelValues("success")))
	require.Equal(t, float64(failures), testutil.ToFloat64(l.d.reloads.WithLabelValues("failure")))
	waitFor(t, 10*time.Second, "removed backend actors to stop", func() bool { return l.d.registry.Len() == actors })
	require.Equal(t, "p2c-ewma", l.d.Config().Policy, "the effective config follows the last good reload")
	t.Logf("reload: %d GETs, all 200, over 20 reloads and %d refused; the third backend served %d, with requests in flight at %d of 10 removals",
		tot.ok, failures, cSrv.Requests(), busyAtRemove)
}

// Admin changes and file edits meet as in a three-way merge: a reload of an
// unchanged file keeps every admin change and is a success, a backend the
// admin API removed is not brought back by the file editing it, and one the
// admin API added that the file now lists takes the file's settings.
func TestReloadKeepsAdminChanges(t *testing.T) {
	bs := startBackends(t, synth.Knobs{Name: "a"}, synth.Knobs{Name: "b"}, synth.Knobs{Name: "c"})
	l := startLBD(t, bs[:2], nil)
	a, b, c := bs[0].URL(), bs[1].URL(), bs[2].URL()
	mustAdmin(t, l.adminURL, "POST", "/admin/backend/remove?url="+b, "")
	mustAdmin(t, l.adminURL, "POST", "/admin/backend/add?url="+c+"&weight=3&max_inflight=4", "")
	mustAdmin(t, l.adminURL, "POST", "/admin/backend/cap?url="+a+"&max_inflight=2", "")
	mustAdmin(t, l.adminURL, "POST", "/admin/policy?name=rr", "")

	file := l.d.owner.fileConfig()
	require.NoError(t, l.reload(t, file.Clone()), "an unchanged file applies cleanly")
	edited := file.Clone()
	edited.Backends[1].Weight = 5                                                                   // b: removed through the admin API
	edited.Backends = append(edited.Backends, config.Backend{URL: c, Weight: 1, Protocol: "http1"}) // c: now in the file
	require.NoError(t, l.reload(t, edited))
	require.Equal(t, 2.0, testutil.ToFloat64(l.d.reloads.WithLabelValues("success")))
	require.Zero(t, testutil.ToFloat64(l.d.reloads.WithLabelValues("failure")))

	st, err := l.sched().Status(t.Context())
	require.NoError(t, err)
	require.Equal(t, []string{a, c}, st.Backends, "b stays removed")
	require.Equal(t, "rr", st.Policy, "the file did not change the policy: the admin's stays")
	require.EqualValues(t, 2, l.sched().Lookup(a).Snapshot().MaxInflight, "the file did not change a's cap")
	cs := l.sched().Lookup(c).Snapshot()
	require.Equal(t, 1, cs.Weight, "c takes the file's weight")
	require.Zero(t, cs.MaxInflight, "and the file's cap")
}
