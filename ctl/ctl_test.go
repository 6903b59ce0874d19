package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/daemon"
	"github.com/lbd/lbd/internal/etcdtest"
	"github.com/lbd/lbd/internal/synth"
)

// running is an in-process lbd, as `lbd ctl` finds one: two pools of
// named backends, an admin token in a file.
type running struct {
	d         *daemon.Daemon
	data      string // http://host:port of the data plane
	admin     string // host:port of the admin API
	tokenFile string
	urls      []string // web-1, web-2 (pool default), api-1 (pool api)
}

const testToken = "ctl-test-token"

func startLBD(t *testing.T, mutate ...func(*config.Config)) *running {
	t.Helper()
	return startLBDOver(t, startBackends(t), mutate...)
}

// startBackends starts the synthetic backends web-1, web-2 and api-1.
func startBackends(t *testing.T) []string {
	t.Helper()
	var urls []string
	for _, name := range []string{"web-1", "web-2", "api-1"} {
		b, err := synth.Start("127.0.0.1:0", synth.Knobs{Name: name}, synth.WithSeed(1))
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close() })
		urls = append(urls, b.URL())
	}
	return urls
}

// startLBDOver runs an lbd over the backends of startBackends.
func startLBDOver(t *testing.T, urls []string, mutate ...func(*config.Config)) *running {
	t.Helper()
	r := &running{tokenFile: filepath.Join(t.TempDir(), "token"), urls: urls}
	require.NoError(t, os.WriteFile(r.tokenFile, []byte(testToken+"\n"), 0o600))
	mk := func() *config.Config {
		c := config.Default()
		c.Listen, c.Admin.Listen, c.Admin.TokenFile = "127.0.0.1:0", "127.0.0.1:0", r.tokenFile
		c.AccessLog.Mode, c.Warmup.Duration = "off", 0
		c.Backends = []config.Backend{{URL: r.urls[0], Name: "web-1", Weight: 1, Protocol: "http1"}, {URL: r.urls[1], Name: "web-2", Weight: 1, Protocol: "http1"}}
		api, _ := c.PoolConfig(config.DefaultPool)
		api.Backends = []config.Backend{{URL: r.urls[2], Name: "api-1", Weight: 1, Protocol: "http1"}}
		c.Pools = map[string]config.Pool{"api": api}
		c.Routes = []config.Route{{Name: "api", Match: config.RouteMatch{PathPrefix: "/api/"}, Pool: "api"}, {Name: "web", Pool: "default"}}
		for _, m := range mutate {
			m(c)
		}
		require.NoError(t, c.Validate())
		return c
	}
	cfg := mk()
	d, err := daemon.New(daemon.Options{Config: cfg, Load: func() (*config.Config, error) {
		c := mk()
		c.Listen, c.Admin.Listen = cfg.Listen, cfg.Admin.Listen
		return c, nil
	}, Logger: slog.New(slog.DiscardHandler), Getenv: func(string) string { return "" }})
	require.NoError(t, err)
	require.NoError(t, d.Start())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = d.Shutdown(ctx)
	})
	r.d, r.data, r.admin = d, "http://"+d.DataAddr(), d.AdminAddr()
	return r
}

// syncBuffer is a bytes.Buffer for a command running on another goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ctl runs `lbd ctl` against r with the token file and returns the exit
// status, stdout and stderr.
func (r *running) ctl(args ...string) (int, string, string) {
	var out, errb syncBuffer
	code := Main(append([]string{"-admin", r.admin, "-token-file", r.tokenFile}, args...), &out, &errb, Env{Getenv: func(string) string { return "" }})
	return code, out.String(), errb.String()
}

func (r *running) must(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := r.ctl(args...)
	require.Equal(t, ExitOK, code, "lbd ctl %v: %s", args, errs)
	require.Empty(t, errs)
	return out
}

// lines splits a table into its rows, each into its columns.
func lines(out string) [][]string {
	var rows [][]string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		rows = append(rows, strings.Fields(l))
	}
	return rows
}

// row returns the table row that has s, or fails.
func row(t *testing.T, out, s string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	t.Fatalf("no row with %q in:\n%s", s, out)
	return ""
}

func TestBackendsAndPools(t *testing.T) {
	r := startLBD(t)
	out := r.must(t, "backends")
	rows := lines(out)
	require.Equal(t, []string{"POOL", "BACKEND", "NAME", "STATE", "BREAKER", "INFLIGHT", "EWMA", "REQUESTS", "FAILURES", "WEIGHT", "WHY"}, rows[0])
	require.Len(t, rows, 3, "the pool default's two backends")
	require.Contains(t, row(t, out, r.urls[0]), "web-1")
	require.Regexp(t, `healthy\s+closed\s+0\s+\S+ms\s+0\s+0\s+1\s+in the config file$`, row(t, out, r.urls[0]))
	hdr := strings.Index(rows[0][0], "POOL")
	require.Equal(t, strings.Index(strings.Split(out, "\n")[0], "BACKEND"), strings.Index(strings.Split(out, "\n")[1], "http://"), "aligned columns %d", hdr)

	out = r.must(t, "backends", "-pool", "api")
	require.Len(t, lines(out), 2)
	require.Contains(t, row(t, out, r.urls[2]), "api-1")

	var doc struct {
		Backends []struct{ URL, Name, State, Pool string }
	}
	require.NoError(t, json.Unmarshal([]byte(r.must(t, "-o", "json", "backends", "-pool", "api")), &doc))
	require.Len(t, doc.Backends, 1)
	require.Equal(t, "api-1", doc.Backends[0].Name)
	require.NoError(t, json.Unmarshal([]byte(r.must(t, "backends", "-o", "json")), &doc), "-o after the command too")
	require.Len(t, doc.Backends, 2)

	out = r.must(t, "pools")
	require.Equal(t, []string{"POOL", "POLICY", "STICKY", "CANARY", "BACKENDS", "ELIGIBLE", "INFLIGHT", "ROUTES"}, lines(out)[0])
	require.Equal(t, []string{"default", "p2c-ewma", "off", "-", "2", "2", "0", "web"}, lines(out)[1])
	require.Equal(t, []string{"api", "p2c-ewma", "off", "-", "1", "1", "0", "api"}, lines(out)[2])
	var pools struct{ Pools []struct{ Name string } }
	require.NoError(t, json.Unmarshal([]byte(r.must(t, "-o", "json", "pools")), &pools))
	require.Len(t, pools.Pools, 2)
}

func TestChangesThroughCtl(t *testing.T) {
	r := startLBD(t)
	out := r.must(t, "drain", r.urls[0])
	require.Regexp(t, `draining\s+closed.*admin drain$`, row(t, out, r.urls[0]))
	require.Contains(t, row(t, r.must(t, "backends"), r.urls[0]), "admin drain", "the state's cause")
	require.Regexp(t, `healthy.*admin undrain$`, row(t, r.must(t, "undrain", r.urls[0]), r.urls[0]))
	require.Regexp(t, `draining.*admin drain$`, row(t, r.must(t, "drain", r.urls[2], "-pool", "api"), r.urls[2]), "-pool after the URL")

	extra := "http://127.0.0.1:1"
	out = r.must(t, "add", extra, "-weight", "3", "-name", "extra", "-pool", "api")
	require.Regexp(t, `^api\s+http://127.0.0.1:1\s+extra\s+\S+\s+closed\s+0\s+\S+\s+0\s+0\s+3\s+admin add$`, row(t, out, extra))
	out = r.must(t, "cap", extra, "5", "-pool", "api")
	require.Regexp(t, `closed\s+0/5\s`, row(t, out, extra))
	require.Equal(t, "removed http://127.0.0.1:1 from pool api: it drains, then stops\n", r.must(t, "remove", extra, "-pool", "api"))
	var removed map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.must(t, "-o", "json", "add", extra)), &removed))
	require.Equal(t, extra, removed["url"])
	require.NoError(t, json.Unmarshal([]byte(r.must(t, "-o", "json", "remove", extra)), &removed))
	require.Equal(t, extra, removed["removed"])

	require.Equal(t, "pool default: policy p2c-ewma, sticky off\n", r.must(t, "policy"))
	require.Equal(t, "pool api: policy rr, sticky off\n", r.must(t, "policy", "rr", "-pool", "api"))
	var pol struct{ Policy string }
	require.NoError(t, json.Unmarshal([]byte(r.must(t, "-o", "json", "policy", "-pool", "api")), &pol))
	require.Equal(t, "rr", pol.Policy)

	require.Equal(t, "pool default: no canary\n", r.must(t, "canary"))
	require.Equal(t, "pool default: canary "+r.urls[1]+" takes 10% of requests\n", r.must(t, "canary", r.urls[1], "10"))
	require.Equal(t, "pool default: canary "+r.urls[1]+" takes 10% of requests\n", r.must(t, "canary"))
	require.Contains(t, r.must(t, "pools"), r.urls[1]+" 10%")
	require.Equal(t, "pool default: no canary\n", r.must(t, "canary", "clear"))

	out = r.must(t, "reload", "-dry-run")
	require.Equal(t, "dry run, nothing applied: 0 setting(s) changed, 0 backend(s) changed, 3 kept\n", out)
	out = r.must(t, "reload")
	require.Equal(t, "reloaded: 0 setting(s) changed, 0 backend(s) changed, 3 kept\n", out)
	var plan struct {
		DryRun bool `json:"dry_run"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.must(t, "-o", "json", "reload", "-dry-run")), &plan))
	require.True(t, plan.DryRun)

	out = r.must(t, "events")
	require.Equal(t, []string{"TIME", "POOL", "BACKEND", "NAME", "KIND", "FROM", "TO", "CAUSE"}, lines(out)[0])
	require.Regexp(t, `default\s+`+r.urls[0]+`\s+web-1\s+state\s+healthy\s+draining\s+admin drain`, out)
	require.Regexp(t, `api\s+http://127.0.0.1:1\s+extra\s+state\s+\S+\s+removed\s+admin remove`, out)
	out = r.must(t, "events", "-backend", "web-1", "-limit", "1")
	require.Len(t, lines(out), 2, "the header and web-1's last event")
	require.Contains(t, out, "admin undrain")
	var evs struct{ Events []struct{ Cause string } }
	require.NoError(t, json.Unmarshal([]byte(r.must(t, "-o", "json", "events", "-pool", "api")), &evs))
	require.NotEmpty(t, evs.Events)
}

// A stream runs until its limit (tap) or until lbd ends it (events -follow).
func TestStreams(t *testing.T) {
	r := startLBD(t)
	get := func() {
		resp, err := http.Get(r.data + "/api/x")
		if err == nil {
			resp.Body.Close()
		}
	}
	run := func(args ...string) (<-chan int, *syncBuffer) {
		var out, errb syncBuffer
		done := make(chan int, 1)
		go func() {
			done <- Main(append([]string{"-admin", r.admin, "-token-file", r.tokenFile}, args...), &out, &errb, Env{Getenv: func(string) string { return "" }})
		}()
		return done, &out
	}
	// Requests until the tap has seen its limit: it may subscribe after the first ones.
	drive := func(done <-chan int) int {
		for range 500 {
			select {
			case code := <-done:
				return code
			default:
				get()
				time.Sleep(10 * time.Millisecond)
			}
		}
		t.Fatal("the tap did not end at its limit")
		return 0
	}
	done, out := run("tap", "-pool", "api", "-limit", "2")
	require.Equal(t, ExitOK, drive(done))
	first := strings.Split(out.String(), "\n")[0]
	require.Regexp(t, `^\d\d:\d\d:\d\d\.\d{3} GET 127\.0\.0\.1:\d+/api/x -> `+r.urls[2]+` \(api-1\) 200 \S+ms pool=api policy=p2c-ewma id=\S+$`, first)
	require.Contains(t, out.String(), "  * "+r.urls[2]+" (api-1) eligible ewma=")
	require.Equal(t, 2, strings.Count(out.String(), " id="), "two requests")

	done, out = run("-o", "json", "tap", "-status", "2xx", "-backend", "api-1", "-limit", "1")
	require.Equal(t, ExitOK, drive(done))
	var e struct {
		Backend    string
		Candidates []struct{ Backend string }
	}
	require.NoError(t, json.Unmarshal([]byte(out.String()), &e))
	require.Equal(t, r.urls[2], e.Backend)
	require.Len(t, e.Candidates, 1)

	done, out = run("events", "-follow", "-pool", "default")
	waitFor := func(s string) {
		for range 500 {
			if strings.Contains(out.String(), s) {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("no %q in %q", s, out.String())
	}
	waitFor("in the config file")
	r.must(t, "drain", r.urls[1])
	waitFor(r.urls[1] + " (web-2)  state healthy -> draining: admin drain")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, r.d.Shutdown(ctx))
	select {
	case code := <-done:
		require.Equal(t, ExitOK, code, "the stream ended with lbd")
	case <-time.After(10 * time.Second):
		t.Fatal("events -follow did not end with lbd")
	}
}

func TestErrorsAndExitCodes(t *testing.T) {
	r := startLBD(t)
	cases := []struct {
		args []string
		code int
		err  string
	}{
		{[]string{}, ExitUsage, "no command given"},
		{[]string{"frobnicate"}, ExitUsage, `unknown command "frobnicate"`},
		{[]string{"drain"}, ExitUsage, "drain: want URL, got 0 argument(s)"},
		{[]string{"cap", r.urls[0], "many"}, ExitUsage, `cap: N must be a whole number`},
		{[]string{"backends", "-bogus"}, ExitUsage, "flag provided but not defined: -bogus"},
		{[]string{"-o", "yaml", "pools"}, ExitUsage, `-o: want table or json, got "yaml"`},
		{[]string{"canary", "a", "b", "c"}, ExitUsage, "canary: want URL PERCENT"},
		{[]string{"drain", "http://127.0.0.1:9"}, ExitError, "404 Not Found: url: no such backend: http://127.0.0.1:9 in pool default"},
		{[]string{"backends", "-pool", "nope"}, ExitError, `404 Not Found: pool: no such pool "nope"`},
		{[]string{"policy", "fastest"}, ExitError, "400 Bad Request: "},
		{[]string{"tap", "-status", "6xx"}, ExitError, "400 Bad Request: status: want 2xx"},
		{[]string{"fleet", "x"}, ExitUsage, "fleet: want no arguments"},
	}
	for _, c := range cases {
		code, out, errs := r.ctl(c.args...)
		require.Equal(t, c.code, code, "%v: %s", c.args, errs)
		require.Contains(t, errs, c.err, "%v", c.args)
		require.Empty(t, out, "%v: errors go to stderr", c.args)
		if c.code == ExitUsage {
			require.Contains(t, errs, "usage: lbd ctl", "usage mistakes show the usage")
		}
	}

	require.Equal(t, "fleet mode is off: this lbd runs alone (no fleet section in its config)\n", r.must(t, "fleet"))
	require.JSONEq(t, `{"enabled": false}`, r.must(t, "-o", "json", "fleet"))

	var out, errb bytes.Buffer
	require.Equal(t, ExitError, Main([]string{"-admin", r.admin, "pools"}, &out, &errb, Env{Getenv: func(string) string { return "" }}))
	require.Contains(t, errb.String(), "401 Unauthorized: Authorization: a valid bearer token is required")

	env := map[string]string{"LB_ADMIN_ADDR": r.admin, "LB_ADMIN_TOKEN": testToken}
	out.Reset()
	errb.Reset()
	require.Equal(t, ExitOK, Main([]string{"pools"}, &out, &errb, Env{Getenv: func(k string) string { return env[k] }}), errb.String())
	require.Contains(t, out.String(), "default")

	errb.Reset()
	require.Equal(t, ExitError, Main([]string{"-admin", "127.0.0.1:1", "pools"}, &out, &errb, Env{Getenv: func(string) string { return "" }}))
	require.Contains(t, errb.String(), "lbd's admin API at http://127.0.0.1:1")

	out.Reset()
	require.Equal(t, ExitOK, Main([]string{"-h"}, &out, &errb, Env{}))
	require.Contains(t, out.String(), "canary [URL PERCENT | clear]")
	require.Equal(t, ExitOK, Main([]string{"help"}, &out, &errb, Env{}))
}

// fleetBody is GET /admin/fleet's answer as docs/FLEET.md gives it.
const fleetBody = `{"enabled": true,
  "self": {"name": "web-1@127.0.0.1:3031", "connected": true, "synced": true, "revision": 1042,
    "changes_applied": 37, "resyncs": 2,
    "last_error": "connect to [http://127.0.0.1:2379]: no connection within 2s (TRANSIENT_FAILURE)",
    "last_error_at": "2026-12-01T15:19:42Z"},
  "etcd": {"endpoints": ["http://127.0.0.1:2379"], "prefix": "/lbd/"},
  "replicas": [
    {"name": "web-1@127.0.0.1:3031", "admin_address": "127.0.0.1:3031", "started_at": "2026-12-01T15:02:10Z", "version": "v1.4.0"},
    {"name": "web-2@127.0.0.1:3031", "admin_address": "127.0.0.1:3031", "started_at": "2026-12-01T15:02:11Z", "version": "v1.4.0"}
  ]
}`

func TestFleet(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/admin/fleet" || r.Header.Get("Authorization") != "Bearer t0k" {
			http.Error(w, `{"error": "not this"}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(fleetBody))
	}))
	defer srv.Close()
	env := Env{Getenv: func(k string) string { return map[string]string{"LB_ADMIN_TOKEN": "t0k"}[k] }}
	var out, errb bytes.Buffer
	require.Equal(t, ExitOK, Main([]string{"-admin", srv.URL, "fleet"}, &out, &errb, env), errb.String())
	text := out.String()
	require.Contains(t, text, "replica web-1@127.0.0.1:3031: connected, synced at revision 1042 (37 changes applied, 2 resyncs)\n")
	require.Contains(t, text, "etcd http://127.0.0.1:2379 prefix /lbd/\n")
	require.Contains(t, text, "no connection within 2s (TRANSIENT_FAILURE)")
	require.Regexp(t, `REPLICA\s+ADMIN\s+STARTED\s+VERSION`, text)
	require.Regexp(t, `web-1@127.0.0.1:3031 \(this one\)\s+127.0.0.1:3031\s+\S+\s+v1.4.0`, text)
	require.Regexp(t, `web-2@127.0.0.1:3031\s+127.0.0.1:3031\s+\S+\s+v1.4.0`, text)

	out.Reset()
	require.Equal(t, ExitOK, Main([]string{"-admin", srv.URL, "-o", "json", "fleet"}, &out, &errb, env))
	var doc map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &doc))
	require.Len(t, doc["replicas"], 2)
}

// Two replicas of a fleet over a real etcd: lbd ctl fleet lists both, and
// names the one it asked.
func TestFleetReplicas(t *testing.T) {
	e := etcdtest.Start(t, etcdtest.Options{})
	urls := startBackends(t)
	var reps []*running
	for _, name := range []string{"A", "B"} {
		reps = append(reps, startLBDOver(t, urls, func(c *config.Config) {
			f := config.DefaultFleet()
			f.Etcd.Endpoints, f.Etcd.Prefix, f.Name = []string{e.Endpoint()}, "/lbd-ctl-test/", name
			c.Fleet = &f
		}))
	}
	var out string
	for range 100 { // B's registration reaches A's watch within moments
		if out = reps[0].must(t, "fleet"); strings.Contains(out, "\nB ") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	require.Regexp(t, `^replica A: connected, synced at revision \d+`, out)
	require.Contains(t, out, "etcd "+e.Endpoint()+" prefix /lbd-ctl-test/\n")
	require.Regexp(t, `\nA \(this one\)\s+127\.0\.0\.1:\d+\s`, out)
	require.Regexp(t, `\nB\s+127\.0\.0\.1:\d+\s`, out)

	// A change made with lbd ctl on A is in force on B.
	reps[0].must(t, "drain", reps[0].urls[0])
	for range 100 {
		if strings.Contains(row(t, reps[1].must(t, "backends"), reps[0].urls[0]), "draining") {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.Regexp(t, `draining.*admin drain \(fleet, etcd revision \d+\)$`, row(t, reps[1].must(t, "backends"), reps[0].urls[0]))
	var doc struct {
		Enabled  bool
		Replicas []struct{ Name string }
	}
	require.NoError(t, json.Unmarshal([]byte(reps[1].must(t, "-o", "json", "fleet")), &doc))
	require.True(t, doc.Enabled)
	require.Len(t, doc.Replicas, 2)
}
