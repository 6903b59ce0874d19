package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/internal/synth"
	"github.com/lbd/lbd/routing"
)

// burst sends n concurrent GETs and counts the answers by status.
func (l *testLBD) burst(t *testing.T, n int) map[int]int {
	t.Helper()
	var mu sync.Mutex
	got := map[int]int{}
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			resp, err := http.Get(l.url + "/")
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			got[resp.StatusCode]++
			mu.Unlock()
		})
	}
	wg.Wait()
	return got
}

// admission.max_inflight from 1024 to 2 by a reload turns a burst of 12
// requests to a 300ms backend into overload rejections.
func TestReloadAppliesAdmissionLive(t *testing.T) {
	l := startLBD(t, startBackends(t, synth.Knobs{Name: "a", Latency: 300 * time.Millisecond}), func(c *config.Config) {
		c.AIMD.Enabled = false
	})
	require.Equal(t, map[int]int{200: 12}, l.burst(t, 12))
	next := l.d.owner.fileConfig().Clone()
	next.Admission.MaxInflight = 2
	require.NoError(t, l.reload(t, next))
	got := l.burst(t, 12)
	require.Equal(t, 2, got[200], "two places: %v", got)
	require.Equal(t, 10, got[503], "the rest are shed: %v", got)
	require.EqualValues(t, 2, l.d.AdmissionStatus().Admission.MaxInflight)
}

// health.interval from 3s to 200ms by a reload multiplies the probes: five
// more in three seconds cannot happen at one every three seconds.
func TestReloadAppliesHealthIntervalLive(t *testing.T) {
	bs := startBackends(t, synth.Knobs{Name: "a"})
	l := startLBD(t, bs, func(c *config.Config) { c.Health.Interval = config.Duration(3 * time.Second) })
	next := l.d.owner.fileConfig().Clone()
	next.Health.Interval = config.Duration(200 * time.Millisecond)
	plan, err := l.d.ReloadConfig(context.Background(), next, false)
	require.NoError(t, err)
	require.Equal(t, []config.SettingChange{{Path: "health.interval", From: "3s", To: "200ms"}}, plan.Settings)
	require.Equal(t, []routing.PoolStep{{Pool: "default", Settings: []string{"health"}}}, plan.Routing.Pools)
	before := bs[0].Server.HealthChecks()
	eventually(t, 3*time.Second, "five probes at the new interval", func() bool { return bs[0].Server.HealthChecks() >= before+5 })
}

// A reload that changes the policy, the health settings and another
// backend's weight keeps the actors of unchanged backends: their request
// counts and EWMA are the same values afterwards.
func TestReloadKeepsUnchangedBackends(t *testing.T) {
	bs := startBackends(t, synth.Knobs{Name: "a", Latency: 5 * time.Millisecond}, synth.Knobs{Name: "b"})
	l := startLBD(t, bs, nil)
	l.spread(t, 30)
	a := l.sched().Lookup(bs[0].URL())
	eventually(t, 2*time.Second, "a's EWMA learnt", func() bool { return a.Snapshot().EWMA > 0 })
	st, err := a.Stats(t.Context())
	require.NoError(t, err)

	next := l.d.owner.fileConfig().Clone()
	next.Policy = "lc"
	next.Health.Path, next.Health.Rise = "/healthz?deep=1", 3
	next.Backends[1].Weight = 4
	plan, err := l.d.ReloadConfig(context.Background(), next, false)
	require.NoError(t, err)
	require.Equal(t, 1, plan.Routing.Kept)
	require.Same(t, a, l.sched().Lookup(bs[0].URL()), "the same actor")
	after, err := a.Stats(t.Context())
	require.NoError(t, err)
	require.Equal(t, st.Requests, after.Requests)
	require.Positive(t, after.EWMAMillis, "the EWMA is kept (a new actor starts at 0)")
	require.Equal(t, 4, l.sched().Lookup(bs[1].URL()).Snapshot().Weight)
	pol, err := l.sched().Status(t.Context())
	require.NoError(t, err)
	require.Equal(t, "lc", pol.Policy)
}

// A streamed response and an open WebSocket in their middle survive a
// reload, even one that replaces the data-plane server (a client timeout
// changed): the new server binds the same address next to the old one
// (SO_REUSEPORT), the old one stops accepting and finishes what it serves.
func TestStreamsAndWebSocketsSurviveAReload(t *testing.T) {
	sse := startBackends(t, synth.Knobs{Name: "sse"})
	ws := startWSBackend(t, "ws")
	l := startLBD(t, nil, func(c *config.Config) {
		c.Backends = []config.Backend{{URL: sse[0].URL(), Weight: 1, Protocol: "http1"}}
		api, _ := c.PoolConfig(config.DefaultPool)
		api.Backends = []config.Backend{{URL: ws.srv.URL, Weight: 1, Protocol: "http1"}}
		c.Pools = map[string]config.Pool{"ws": api}
		c.Routes = []config.Route{{Match: config.RouteMatch{PathPrefix: "/ws"}, Pool: "ws"}, {Match: config.RouteMatch{}, Pool: "default"}}
	})
	conn, _ := wsDial(t, l)
	resp, err := http.Get(l.url + "/sse?n=20&every=100ms")
	require.NoError(t, err)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	events := 0
	for events < 3 && sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data:") {
			events++
		}
	}

	oldServer := l.d.servers.dataServer()
	next := l.d.owner.fileConfig().Clone()
	next.Timeouts.ClientIdle = config.Duration(90 * time.Second)
	next.Policy = "rr"
	plan, err := l.d.ReloadConfig(context.Background(), next, false)
	require.NoError(t, err)
	require.Contains(t, settingPaths(plan), "timeouts.client_idle")
	require.NotSame(t, oldServer, l.d.servers.dataServer(), "a new server")
	require.Equal(t, oldServer.ln.Addr().String(), l.d.DataAddr(), "on the same address")

	wsEcho(t, conn, websocket.MessageText, "still open after the reload")
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data:") {
			events++
		}
	}
	require.Equal(t, 20, events, "the stream ran to its end")
	r2, err := http.Get("http://" + l.d.DataAddr() + "/")
	require.NoError(t, err)
	r2.Body.Close()
	require.Equal(t, http.StatusOK, r2.StatusCode, "the new server serves")
}

func settingPaths(p *ReloadPlan) []string {
	var out []string
	for _, s := range p.Settings {
		out = append(out, s.Path)
	}
	return out
}

// Listener addresses change live; a new address that cannot be bound
// refuses the reload, naming it, and everything stays as it was.
func TestReloadMovesListenersOrRefuses(t *testing.T) {
	l := startLBD(t, startBackends(t, synth.Knobs{Name: "a"}), nil)
	taken, err := net.Listen("tcp", "127.0.0.1:0") // no SO_REUSEPORT: lbd cannot share it
	require.NoError(t, err)
	defer taken.Close()
	before := l.d.DataAddr()
	next := l.d.owner.fileConfig().Clone()
	next.Listen, next.Policy = taken.Addr().String(), "rr"
	_, err = l.d.ReloadConfig(context.Background(), next, false)
	require.ErrorContains(t, err, "listen: "+taken.Addr().String())
	require.Equal(t, before, l.d.DataAddr())
	st, err := l.sched().Status(t.Context())
	require.NoError(t, err)
	require.Equal(t, "p2c-ewma", st.Policy, "a refused reload changes nothing")

	free := freeAddr(t)
	next.Listen, next.Admin.Listen = free, freeAddr(t)
	_, err = l.d.ReloadConfig(context.Background(), next, false)
	require.NoError(t, err)
	require.Equal(t, free, l.d.DataAddr())
	resp, err := http.Get("http://" + next.Admin.Listen + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "the admin API moved too")
}

// freeAddr returns a loopback address the kernel just handed out.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// POST /admin/reload applies the file (200 with the plan), plans it with
// dry_run=1 (nothing changes), and refuses a broken file with every
// problem named (400, nothing changes).
func TestAdminReload(t *testing.T) {
	bs := startBackends(t, synth.Knobs{Name: "a"}, synth.Knobs{Name: "b"})
	l := startLBD(t, bs[:1], nil)
	path := filepath.Join(t.TempDir(), "lbd.json")
	l.file.Store(&path)
	next := l.d.owner.fileConfig().Clone()
	next.Backends = append(next.Backends, config.Backend{URL: bs[1].URL(), Weight: 2, Protocol: "http1"})
	next.Retries.Max = 2
	writeConfig(t, path, next)

	code, plan := adminCall(t, l.adminURL, "POST", "/admin/reload?dry_run=1", "")
	require.Equal(t, http.StatusOK, code, "%v", plan)
	require.Equal(t, true, plan["dry_run"])
	require.Len(t, l.sched().Picker().Backends(), 1, "a dry run changes nothing")

	code, plan = adminCall(t, l.adminURL, "POST", "/admin/reload", "")
	require.Equal(t, http.StatusOK, code, "%v", plan)
	steps := plan["routing"].(map[string]any)["backends"].([]any)
	require.Equal(t, "added", steps[0].(map[string]any)["action"])
	require.Len(t, l.sched().Picker().Backends(), 2)

	require.NoError(t, os.WriteFile(path, []byte(`{"backends": [{"url": "ftp://x", "weight": 0}], "polcy": "rr"}`), 0o600))
	code, refused := adminCall(t, l.adminURL, "POST", "/admin/reload", "")
	require.Equal(t, http.StatusBadRequest, code)
	problems := refused["problems"].([]any)
	require.Len(t, problems, 3, "%v", problems)
	require.Contains(t, problems[0], "polcy: unknown key")
	require.Len(t, l.sched().Picker().Backends(), 2, "nothing changed")
}

// The owner serialises admin changes and reloads: eight clients each set
// the weight of their own backend many times while others reload the
// unchanged file and switch the policy, in an order a fixed seed scrambles;
// afterwards every backend has its client's last weight, in the running
// actors and in the state file. No change is lost or undone.
func TestOwnerNeverLosesAChange(t *testing.T) {
	const clients, rounds = 8, 15
	knobs := make([]synth.Knobs, clients)
	for i := range knobs {
		knobs[i] = synth.Knobs{Name: fmt.Sprint(i)}
	}
	bs := startBackends(t, knobs...)
	state := filepath.Join(t.TempDir(), "state.json")
	l := startLBD(t, bs, func(c *config.Config) { c.StateFile = state })
	file := l.d.owner.fileConfig()
	last := make([]int, clients)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(c), 42))
			for range rounds {
				w := 1 + rnd.IntN(config.MaxWeight)
				code, m := adminCall(t, l.adminURL, "POST", fmt.Sprintf("/admin/backend/weight?url=%s&weight=%d", bs[c].URL(), w), "")
				if code != http.StatusOK {
					t.Errorf("weight: %d %v", code, m)
					return
				}
				last[c] = w
			}
		})
	}
	wg.Go(func() {
		for i := range rounds {
			if err := l.reload(t, file.Clone()); err != nil {
				t.Error(err)
			}
			policy := []string{"rr", "lc"}[i%2]
			if code, m := adminCall(t, l.adminURL, "POST", "/admin/policy?name="+policy, ""); code != http.StatusOK {
				t.Errorf("policy: %d %v", code, m)
			}
		}
	})
	wg.Wait()
	raw, err := os.ReadFile(state)
	require.NoError(t, err)
	var saved routing.State
	require.NoError(t, json.Unmarshal(raw, &saved))
	for c, w := range last {
		u := bs[c].URL()
		require.Equal(t, w, l.sched().Lookup(u).Snapshot().Weight, "backend %d runs its last weight", c)
		require.Equal(t, w, *saved.Overlay.Pools["default"].Backends[u].Weight, "backend %d's last weight is on disk", c)
	}
	st, err := l.sched().Status(t.Context())
	require.NoError(t, err)
	require.Equal(t, []string{"rr", "lc"}[(rounds-1)%2], st.Policy, "the last policy call wins; the reloads of an unchanged file did not undo it")
}
