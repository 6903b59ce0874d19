package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/lbd/lbd/actor"
	"github.com/lbd/lbd/admin"
	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/daemon"
	"github.com/lbd/lbd/routing"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.DiscardHandler)

const (
	b1 = "http://127.0.0.1:9001"
	b2 = "http://127.0.0.1:9002"
)

// fixture is an admin server over a real daemon (the routing-config owner
// with its scheduler and two backend actors; no server listens at their
// URLs, and active checks are off, so they stay as the admin API makes
// them), counting the changes that succeed.
type fixture struct {
	srv     *httptest.Server
	admin   *admin.Server
	d       *daemon.Daemon
	reg     *actor.Registry
	changes atomic.Int64
}

// counting passes every call to the daemon and counts the changes it took.
type counting struct {
	admin.Control
	n *atomic.Int64
}

func (c counting) Apply(ctx context.Context, ch routing.Change) error {
	err := c.Control.Apply(ctx, ch)
	if err == nil {
		c.n.Add(1)
	}
	return err
}

func newFixture(t testing.TB, mutate func(*admin.Options)) *fixture {
	t.Helper()
	cfg := config.Default()
	cfg.Listen, cfg.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.AccessLog.Mode = "off"
	cfg.Policy = "rr"
	cfg.Health.Disabled, cfg.Outlier.Disabled = true, true
	cfg.Breaker.OpenFor = config.Duration(time.Second)
	cfg.Breaker.MaxOpenFor = config.Duration(time.Minute)
	cfg.Backends = []config.Backend{{URL: b1, Weight: 1, Protocol: "http1"}, {URL: b2, Weight: 1, Protocol: "http1"}}
	d, err := daemon.New(daemon.Options{Config: cfg, Logger: quiet, Getenv: func(string) string { return "" }})
	require.NoError(t, err)
	f := &fixture{d: d, reg: d.Registry()}
	o := admin.Options{Control: counting{d, &f.changes}, Registry: f.reg, Gatherer: prometheus.NewRegistry(), Logger: quiet}
	if mutate != nil {
		mutate(&o)
	}
	f.admin = admin.New(o)
	f.srv = httptest.NewServer(f.admin)
	t.Cleanup(func() {
		f.srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, d.Shutdown(ctx))
	})
	return f
}

// call sends one request and decodes a JSON answer into a map.
func (f *fixture) call(t *testing.T, method, path, body string, hdr ...string) (*http.Response, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.srv.URL+path, rd)
	require.NoError(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := f.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var m map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		require.NoError(t, json.Unmarshal(raw, &m), "body %s", raw)
	}
	return resp, m
}

func TestEndpoints(t *testing.T) {
	f := newFixture(t, nil)
	const b3 = "http://127.0.0.1:9003"
	steps := []struct {
		method, path, body string
		status             int
		want               map[string]any // fields the answer must carry
	}{
		{"POST", "/admin/backends", `{"url":"http://127.0.0.1:9003/","weight":3,"max_inflight":7}`, 201,
			map[string]any{"url": b3, "weight": 3.0, "max_inflight": 7.0, "state": "warming"}},
		{"POST", "/admin/backends", `{"url":"` + b3 + `"}`, 409, nil},
		{"POST", "/admin/backend/add?url=http://127.0.0.1:9003&weight=2", "", 409, nil},
		{"POST", "/admin/backend/weight?url=" + b3 + "&weight=5", "", 200, map[string]any{"weight": 5.0}},
		{"POST", "/admin/backend/cap?url=" + b3 + "&max_inflight=0", "", 200, map[string]any{"max_inflight": 0.0}},
		{"POST", "/admin/drain?url=" + b3, "", 200, map[string]any{"state": "draining", "draining": true}},
		{"POST", "/admin/undrain?url=" + b3, "", 200, map[string]any{"draining": false}},
		{"POST", "/admin/backend/warm-reset?url=" + b3, "", 200, map[string]any{"url": b3}},
		{"POST", "/admin/canary/set?url=" + b3 + "&percent=12.5", "", 200, map[string]any{"backend": b3, "percent": 12.5, "pool": "default"}},
		{"GET", "/admin/canary", "", 200, map[string]any{"backend": b3, "percent": 12.5}},
		{"POST", "/admin/canary/clear", "", 200, map[string]any{"backend": "", "percent": 0.0}},
		{"GET", "/admin/policy", "", 200, map[string]any{"policy": "rr"}},
		{"PUT", "/admin/policy", `{"policy":"lc","sticky":{"enabled":true,"key":"header:X-User"}}`, 200,
			map[string]any{"policy": "lc", "sticky": map[string]any{"enabled": true, "key": "header:X-User"}}},
		{"POST", "/admin/policy?name=wrr&sticky=off", "", 200,
			map[string]any{"policy": "wrr", "sticky": map[string]any{"enabled": false, "key": ""}}},
		{"DELETE", "/admin/backends?url=" + b3, "", 200, map[string]any{"removed": b3}},
		{"POST", "/admin/backend/add?url=" + b3 + "&weight=2", "", 201, map[string]any{"url": b3, "weight": 2.0}},
		{"POST", "/admin/backend/remove?url=" + b3, "", 200, map[string]any{"removed": b3}},
		{"GET", "/admin/selftest", "", 200, map[string]any{"ok": true}},
		{"GET", "/readyz", "", 200, map[string]any{"ready": true, "eligible": 2.0}},
	}
	for _, s := range steps {
		resp, m := f.call(t, s.method, s.path, s.body)
		require.Equal(t, s.status, resp.StatusCode, "%s %s: %v", s.method, s.path, m)
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		if s.status >= 400 {
			require.NotEmpty(t, m["error"], "%s %s", s.method, s.path)
		}
		for k, v := range s.want {
			require.Equal(t, v, m[k], "%s %s: field %s in %v", s.method, s.path, k, m)
		}
	}
	require.EqualValues(t, 12, f.changes.Load(), "every change but warm-reset is the owner's, once each")
	resp, m := f.call(t, "GET", "/admin/backends", "")
	require.Equal(t, 200, resp.StatusCode)
	require.Len(t, m["backends"], 2)
}

func TestErrors(t *testing.T) {
	f := newFixture(t, nil)
	big := `{"url":"` + strings.Repeat("a", 70<<10) + `"}`
	cases := []struct {
		name, method, path, body string
		status                   int
		mention                  string // the message names the field
	}{
		{"bad url", "POST", "/admin/drain?url=ftp://x", "", 400, "url"},
		{"missing url", "POST", "/admin/drain", "", 400, "url"},
		{"unknown backend", "POST", "/admin/drain?url=http://127.0.0.1:1", "", 404, "url"},
		{"unknown backend remove", "DELETE", "/admin/backends?url=http://127.0.0.1:1", "", 404, "url"},
		{"cap not a number", "POST", "/admin/backend/cap?url=" + b1 + "&max_inflight=x", "", 400, "max_inflight"},
		{"cap missing", "POST", "/admin/backend/cap?url=" + b1, "", 400, "max_inflight"},
		{"cap negative", "POST", "/admin/backend/cap?url=" + b1 + "&max_inflight=-1", "", 400, "max_inflight"},
		{"weight zero", "POST", "/admin/backend/weight?url=" + b1 + "&weight=0", "", 400, "weight"},
		{"add weight out of range", "POST", "/admin/backend/add?url=http://127.0.0.1:9009&weight=100000", "", 400, "weight"},
		{"add bad protocol", "POST", "/admin/backends", `{"url":"http://127.0.0.1:9009","protocol":"h3"}`, 400, "protocol"},
		{"add unknown field", "POST", "/admin/backends", `{"url":"http://127.0.0.1:9009","wieght":2}`, 400, "wieght"},
		{"add wrong type", "POST", "/admin/backends", `{"url":"http://127.0.0.1:9009","weight":"2"}`, 400, "weight"},
		{"add empty body", "POST", "/admin/backends", ``, 400, "body"},
		{"add not json", "POST", "/admin/backends", `{`, 400, "body"},
		{"add too big", "POST", "/admin/backends", big, 413, "body"},
		{"policy unknown", "PUT", "/admin/policy", `{"policy":"random"}`, 400, "policy"},
		{"sticky key bad", "PUT", "/admin/policy", `{"sticky":{"enabled":true,"key":"tls"}}`, 400, "sticky"},
		{"policy query empty", "POST", "/admin/policy", "", 400, "name"},
		{"sticky not a switch", "POST", "/admin/policy?sticky=maybe", "", 400, "sticky"},
		{"canary percent", "POST", "/admin/canary/set?url=" + b1 + "&percent=101", "", 400, "percent"},
		{"canary percent missing", "POST", "/admin/canary/set?url=" + b1, "", 400, "percent"},
		{"canary unknown backend", "POST", "/admin/canary/set?url=http://127.0.0.1:1&percent=5", "", 404, "url"},
		{"unknown pool", "POST", "/admin/drain?pool=web&url=" + b1, "", 404, "pool: no such pool"},
		{"method", "GET", "/admin/drain?url=" + b1, "", 405, "POST"},
		{"method on rest form", "PATCH", "/admin/backends", "", 405, "GET"},
		{"no such path", "GET", "/admin/nope", "", 404, "endpoint"},
		{"unknown parameter", "POST", "/admin/backend/add?url=http://127.0.0.1:9009&wieght=2", "", 400, "wieght: unknown parameter; this call takes url, weight, max_inflight, protocol, name, pool"},
		{"repeated parameter", "POST", "/admin/drain?url=" + b1 + "&url=" + b2, "", 400, "url: given 2 times"},
		{"malformed query", "POST", "/admin/drain?url=%zz", "", 400, "query: invalid URL escape"},
		{"query on a JSON call", "POST", "/admin/backends?url=http://127.0.0.1:9009", `{"url":"http://127.0.0.1:9009"}`, 400, "url: unknown parameter; this call takes pool"},
		{"parameter on clear", "POST", "/admin/canary/clear?url=" + b1, "", 400, "url: unknown parameter"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, m := f.call(t, c.method, c.path, c.body)
			require.Equal(t, c.status, resp.StatusCode, "%v", m)
			msg, _ := m["error"].(string)
			require.Contains(t, msg, c.mention)
			if c.status == 405 {
				require.NotEmpty(t, resp.Header.Get("Allow"))
			}
		})
	}
	require.Zero(t, f.changes.Load(), "a rejected call changes nothing")
}

func TestToken(t *testing.T) {
	f := newFixture(t, func(o *admin.Options) { o.Token = "s3cret" })
	for _, p := range []string{"/admin/backends", "/metrics", "/debug/actors", "/admin/selftest"} {
		resp, m := f.call(t, "GET", p, "")
		require.Equal(t, 401, resp.StatusCode, p)
		require.Contains(t, resp.Header.Get("WWW-Authenticate"), "Bearer")
		require.NotEmpty(t, m["error"])
		resp, _ = f.call(t, "GET", p, "", "Authorization", "Bearer wrong")
		require.Equal(t, 401, resp.StatusCode, p)
		resp, _ = f.call(t, "GET", p, "", "Authorization", "Bearer s3cret")
		require.Equal(t, 200, resp.StatusCode, p)
	}
	resp, _ := f.call(t, "POST", "/admin/drain?url="+b1, "", "Authorization", "Basic s3cret")
	require.Equal(t, 401, resp.StatusCode)
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, _ := f.call(t, "GET", p, "")
		require.Equal(t, 200, resp.StatusCode, "%s needs no token", p)
	}
}

func TestSelftestFailures(t *testing.T) {
	f := newFixture(t, func(o *admin.Options) {
		o.AskTimeout = 200 * time.Millisecond
		o.Checks = map[string]func(context.Context) (string, error){"health": func(context.Context) (string, error) { return "", context.DeadlineExceeded }}
	})
	// Every backend drained: the picker has nothing to pick.
	for _, u := range []string{b1, b2} {
		resp, _ := f.call(t, "POST", "/admin/drain?url="+u, "")
		require.Equal(t, 200, resp.StatusCode)
	}
	// A stuck actor does not answer its ping.
	release := make(chan struct{})
	defer close(release)
	stuck := actor.Spawn(f.reg, blocker{}, actor.Options{Name: "stuck", Kind: "test", Logger: quiet})
	defer stuck.Stop()
	require.NoError(t, stuck.Tell(release))

	resp, m := f.call(t, "GET", "/admin/selftest", "")
	require.Equal(t, 500, resp.StatusCode)
	require.Equal(t, false, m["ok"])
	failed := map[string]string{}
	for _, c := range m["checks"].([]any) {
		c := c.(map[string]any)
		if c["ok"] == false {
			failed[c["name"].(string)] = c["detail"].(string)
		}
	}
	require.Contains(t, failed["actors"], "stuck")
	require.Contains(t, failed["scheduler"], "cannot pick")
	require.Contains(t, failed, "health")
	require.NotContains(t, failed, "metrics")
}

// TestSelftestIgnoresActorsThatStopMeanwhile: an actor told to stop while
// the selftest pings it (a backend removed a moment before, finishing its
// drain) has left, not failed: the selftest stays green and says so. Whether
// the actor answers the queued ping before it sees the stop is the run
// loop's choice, so the race is run until it has gone the stopping way
// (half the time each; 40 tries miss it once in 10^12).
func TestSelftestIgnoresActorsThatStopMeanwhile(t *testing.T) {
	f := newFixture(t, nil)
	for try := range 40 {
		release := make(chan struct{})
		leaving := actor.Spawn(f.reg, blocker{}, actor.Options{Name: "leaving", Kind: "test", Logger: quiet})
		require.NoError(t, leaving.Tell(release)) // busy until release closes: the ping waits in its mailbox
		require.Eventually(t, func() bool { return leaving.Stats().MailboxLen == 0 }, 10*time.Second, time.Millisecond, "it holds the message")
		type answer struct {
			status int
			m      map[string]any
		}
		got := make(chan answer, 1)
		go func() {
			resp, m := f.call(t, "GET", "/admin/selftest", "")
			got <- answer{resp.StatusCode, m}
		}()
		require.Eventually(t, func() bool { return leaving.Stats().MailboxLen == 1 }, 10*time.Second, time.Millisecond, "the ping is queued")
		leaving.Stop()
		close(release) // it finishes the message in hand and exits, answering the ping or dropping it
		a := <-got
		<-leaving.Done()
		require.Equal(t, 200, a.status, "try %d: %v", try, a.m)
		for _, c := range a.m["checks"].([]any) {
			if c := c.(map[string]any); c["name"] == "actors" && strings.Contains(c["detail"].(string), "1 stopped meanwhile") {
				return
			}
		}
	}
	t.Fatal("the actor answered every ping before it stopped")
}

// blocker blocks on the channel it is sent until that channel closes.
type blocker struct{}

func (blocker) Receive(msg any) { <-msg.(chan struct{}) }

// The read-only endpoints: probes, backend rows, actors, config, metrics, pprof.
func TestReadEndpoints(t *testing.T) {
	gather := prometheus.NewRegistry()
	gather.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "lbd_test_total", Help: "a test counter"}))
	cfg := config.Default()
	cfg.Backends = []config.Backend{{URL: "http://user:hunter2@127.0.0.1:9001", Weight: 1, Protocol: "http1"}}
	f := newFixture(t, func(o *admin.Options) {
		o.Gatherer = gather
		o.Config = func() *config.Config { return cfg }
	})

	resp, _ := f.call(t, "GET", "/healthz", "")
	require.Equal(t, 200, resp.StatusCode)
	resp, _ = f.call(t, "HEAD", "/healthz", "")
	require.Equal(t, 200, resp.StatusCode)

	resp, m := f.call(t, "GET", "/admin/backends", "")
	require.Equal(t, 200, resp.StatusCode)
	rows := m["backends"].([]any)
	require.Len(t, rows, 2)
	for _, k := range []string{"url", "weight", "state", "breaker", "inflight", "max_inflight", "ewma_ms", "requests", "failures", "warmup_remaining_ms"} {
		require.Contains(t, rows[0], k, "API.md's backend row")
	}
	require.Equal(t, b1, rows[0].(map[string]any)["url"], "in configuration order")

	resp, m = f.call(t, "GET", "/debug/config", "")
	require.Equal(t, 200, resp.StatusCode)
	raw, err := json.Marshal(m)
	require.NoError(t, err)
	require.NotContains(t, string(raw), "hunter2", "secrets are redacted")
	require.Contains(t, string(raw), "127.0.0.1:9001")

	resp, _ = f.call(t, "GET", "/metrics", "")
	require.Equal(t, 200, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/cmdline"} {
		resp, _ = f.call(t, "GET", p, "")
		require.Equal(t, 200, resp.StatusCode, p)
	}

	// Every backend drained: not ready, and the body says why.
	for _, u := range []string{b1, b2} {
		resp, _ := f.call(t, "POST", "/admin/drain?url="+u, "")
		require.Equal(t, 200, resp.StatusCode)
	}
	resp, m = f.call(t, "GET", "/readyz", "")
	require.Equal(t, 503, resp.StatusCode)
	require.Equal(t, map[string]any{"ready": false, "eligible": 0.0, "total": 2.0, "states": map[string]any{"draining": 2.0},
		"pools": map[string]any{"default": map[string]any{"eligible": 0.0, "total": 2.0}}}, m)

	// Without a config source /debug/config is a JSON 404.
	bare := newFixture(t, nil)
	resp, m = bare.call(t, "GET", "/debug/config", "")
	require.Equal(t, 404, resp.StatusCode)
	require.NotEmpty(t, m["error"])
}

// /debug/actors is live: a stuck actor's queued messages show as mailbox
// depth, a recovered panic as a restart, and each row has API.md's fields.
func TestDebugActors(t *testing.T) {
	f := newFixture(t, nil)
	release := make(chan struct{})
	stuck := actor.Spawn(f.reg, blocker{}, actor.Options{Name: "stuck", Kind: "test", Mailbox: 8, Logger: quiet})
	defer stuck.Stop()
	for range 4 { // the first blocks the loop; three wait in the mailbox
		require.NoError(t, stuck.Tell(release))
	}
	flaky := actor.Spawn(f.reg, panicker{}, actor.Options{Name: "flaky", Kind: "test", Logger: quiet})
	defer flaky.Stop()
	require.NoError(t, flaky.Tell("boom"))
	require.NoError(t, flaky.Ping(t.Context()), "the loop survives the panic")

	rows := map[string]map[string]any{}
	resp, m := f.call(t, "GET", "/debug/actors", "")
	require.Equal(t, 200, resp.StatusCode)
	for _, r := range m["actors"].([]any) {
		row := r.(map[string]any)
		for _, k := range []string{"name", "kind", "mailbox_len", "mailbox_cap", "processed", "restarts", "last_message_at", "state"} {
			require.Contains(t, row, k)
		}
		rows[row["name"].(string)] = row
	}
	close(release)
	require.Contains(t, rows, "scheduler")
	require.Equal(t, 3.0, rows["stuck"]["mailbox_len"])
	require.Equal(t, 8.0, rows["stuck"]["mailbox_cap"])
	require.Equal(t, 1.0, rows["stuck"]["processed"])
	require.Equal(t, 1.0, rows["flaky"]["restarts"])
	require.Equal(t, 1.0, rows["flaky"]["processed"], "the panicking message; pings are the runtime's, not counted")
}

// panicker panics on every message but pings, which the runtime answers.
type panicker struct{}

func (panicker) Receive(msg any) { panic(fmt.Sprint("cannot handle ", msg)) }
