package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/internal/synth"
)

// jsonLog is a JSON slog handler's output, kept line by line for a test
// to read; onLine, when set, runs for every line as it is written.
type jsonLog struct {
	mu     sync.Mutex
	lines  []map[string]any
	onLine func(map[string]any)
}

func (l *jsonLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range bytes.Split(bytes.TrimSpace(p), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			return 0, fmt.Errorf("log line is not JSON: %q", line)
		}
		l.lines = append(l.lines, m)
		if l.onLine != nil {
			l.onLine(m)
		}
	}
	return len(p), nil
}

func (l *jsonLog) logger() *slog.Logger { return slog.New(slog.NewJSONHandler(l, nil)) }

// find returns the lines whose msg is msg.
func (l *jsonLog) find(msg string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, m := range l.lines {
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

func (l *jsonLog) last() map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lines[len(l.lines)-1]
}

// The start line counts the backends of every pool, the ones the state
// file brought back included.
func TestStartLineCountsEveryPoolAndTheRestored(t *testing.T) {
	bs := startBackends(t, synth.Knobs{Name: "a"}, synth.Knobs{Name: "b"}, synth.Knobs{Name: "c"})
	state := filepath.Join(t.TempDir(), "state.json")
	mk := func() *config.Config {
		cfg := testConfig(bs[:1], nil)
		cfg.StateFile = state
		api := cfg.DefaultPoolConfig()
		api.Backends = []config.Backend{{URL: bs[1].URL(), Weight: 1, Protocol: "http1"}}
		cfg.Pools = map[string]config.Pool{"api": api}
		cfg.Routes = []config.Route{{Match: config.RouteMatch{PathPrefix: "/api/"}, Pool: "api"}, {Pool: "default"}}
		require.NoError(t, cfg.Validate())
		return cfg
	}
	first := startDaemon(t, mk())
	mustAdmin(t, "http://"+first.AdminAddr(), "POST", "/admin/backends", fmt.Sprintf(`{"url":%q}`, bs[2].URL()))
	require.NoError(t, first.Shutdown(context.Background()))

	logs := &jsonLog{}
	runLBD(t, mk(), logs.logger(), bs)
	started := logs.find("lbd started")
	require.Len(t, started, 1)
	s := started[0]
	require.EqualValues(t, 3, s["backends"], "the restored backend runs and counts")
	require.EqualValues(t, 1, s["admin_added"])
	require.Equal(t, map[string]any{"default": 2.0, "api": 1.0}, s["backends_by_pool"])
	require.EqualValues(t, 2, s["pools"])
	require.EqualValues(t, 2, s["routes"])
	require.Empty(t, logs.find(noBackendsWarning))
}

func TestStartWithoutBackendsWarns(t *testing.T) {
	logs := &jsonLog{}
	runLBD(t, testConfig(nil, nil), logs.logger(), nil)
	w := logs.find(noBackendsWarning)
	require.Len(t, w, 1)
	require.Equal(t, "WARN", w[0]["level"])
}

// A pool whose backends come from DNS is not empty for long: no warning.
func TestStartWithDiscoveryOnlyDoesNotWarn(t *testing.T) {
	cfg := testConfig(nil, nil)
	src := config.DefaultDiscovery()
	src.DNS, src.Type, src.Port, src.Resolver = "web.example", "a", 8080, "127.0.0.1:1" // nobody answers: it stays empty
	cfg.Discovery = []config.Discovery{src}
	require.NoError(t, cfg.Validate())
	logs := &jsonLog{}
	runLBD(t, cfg, logs.logger(), nil)
	require.Empty(t, logs.find(noBackendsWarning))
	require.EqualValues(t, 1, logs.find("lbd started")[0]["discovery_sources"])
}

// hangingBackend accepts connections and never answers: its health probes
// end by their timeout.
func hangingBackend(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var conns sync.WaitGroup
	done := make(chan struct{})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Go(func() {
				<-done
				c.Close()
			})
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		close(done)
		conns.Wait()
	})
	return "http://" + ln.Addr().String()
}

// Ready waits for the first round of health checks, and comes even when
// every backend is down: lbd is up, /readyz tells the rest.
func TestReadyAfterTheFirstHealthRoundEvenWithEveryBackendDown(t *testing.T) {
	cfg := testConfig(nil, nil)
	refused, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	refusedURL := "http://" + refused.Addr().String()
	require.NoError(t, refused.Close()) // nothing listens there any more
	cfg.Backends = []config.Backend{
		{URL: hangingBackend(t), Weight: 1, Protocol: "http1"},
		{URL: refusedURL, Weight: 1, Protocol: "http1"},
	}
	cfg.Health.Interval, cfg.Health.Timeout = config.Duration(100*time.Millisecond), config.Duration(400*time.Millisecond)
	require.NoError(t, cfg.Validate())
	logs := &jsonLog{}
	start := time.Now()
	l := runLBD(t, cfg, logs.logger(), nil)
	select {
	case <-l.d.Ready():
		t.Fatal("ready before the hanging backend's first probe timed out")
	default:
	}
	select {
	case <-l.d.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("not ready 10s after start with every backend down")
	}
	require.GreaterOrEqual(t, time.Since(start), 400*time.Millisecond, "the round waited for the probe's timeout")
	require.Len(t, logs.find("lbd ready"), 1)
}

func TestReadyWithoutHealthChecks(t *testing.T) {
	bs := startBackends(t, synth.Knobs{Name: "a"})
	l := startLBD(t, bs, func(c *config.Config) { c.Health.Disabled = true })
	select {
	case <-l.d.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("a pool without active checks is ready at once")
	}
}

// callerClient is an HTTP client that records the local addresses of its
// connections: the admin API sees them as the caller's.
func callerClient() (*http.Client, func() map[string]bool) {
	var mu sync.Mutex
	local := map[string]bool{}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			mu.Lock()
			local[c.LocalAddr().String()] = true
			mu.Unlock()
		}
		return c, err
	}}
	return &http.Client{Transport: tr}, func() map[string]bool { mu.Lock(); defer mu.Unlock(); return local }
}

// Every admin change is logged with who asked and each value's old and
// new value.
func TestAdminChangesAreLoggedWithOldNewAndCaller(t *testing.T) {
	bs := startBackends(t, synth.Knobs{Name: "a"}, synth.Knobs{Name: "b"})
	logs := &jsonLog{}
	l := runLBD(t, testConfig(bs[:1], nil), logs.logger(), bs)
	client, caller := callerClient()
	defer client.CloseIdleConnections()
	send := func(method, path, body string) int {
		req, err := http.NewRequest(method, l.adminURL+path, strings.NewReader(body))
		require.NoError(t, err)
		resp, err := client.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	call := func(method, path, body string) {
		require.Less(t, send(method, path, body), 300, "%s %s", method, path)
	}
	a, b := bs[0].URL(), bs[1].URL()
	call("POST", "/admin/backends", fmt.Sprintf(`{"url":%q,"weight":2,"max_inflight":50}`, b))
	require.Equal(t, http.StatusBadRequest, send("POST", "/admin/backend/weight?url="+a, ""), "no weight")
	call("POST", "/admin/backend/weight?url="+a+"&weight=5", "")
	call("POST", "/admin/drain?url="+a, "")
	call("POST", "/admin/drain?url="+a, "") // again: changes nothing
	call("PUT", "/admin/policy", `{"policy":"lc","sticky":{"enabled":true,"key":"header:X-User"}}`)
	call("POST", "/admin/canary/set?url="+b+"&percent=5", "")
	call("DELETE", "/admin/backends?url="+b, "")
	lines := logs.find("admin change")
	require.Len(t, lines, 7, "the refused call (no weight) is not a change")
	for _, m := range lines {
		require.True(t, caller()[m["by"].(string)], "by %v is the caller's address, one of %v", m["by"], caller())
	}
	ch := func(i int) []any { return lines[i]["changes"].([]any) }
	backend := map[string]any{"weight": 2.0, "max_inflight": 50.0, "protocol": "http1", "draining": false}
	require.Equal(t, []any{map[string]any{"url": b, "field": "backend", "old": nil, "new": backend}}, ch(0))
	require.Equal(t, []any{map[string]any{"url": a, "field": "weight", "old": 1.0, "new": 5.0}}, ch(1))
	require.Equal(t, []any{map[string]any{"url": a, "field": "draining", "old": false, "new": true}}, ch(2))
	require.Empty(t, ch(3))
	require.Equal(t, true, lines[3]["unchanged"])
	require.Equal(t, []any{map[string]any{"field": "policy",
		"old": map[string]any{"policy": "p2c-ewma", "sticky": map[string]any{"enabled": false, "key": "ip"}},
		"new": map[string]any{"policy": "lc", "sticky": map[string]any{"enabled": true, "key": "header:X-User"}}}}, ch(4))
	require.Equal(t, []any{map[string]any{"field": "canary",
		"old": map[string]any{"backend": "", "percent": 0.0},
		"new": map[string]any{"backend": b, "percent": 5.0}}}, ch(5))
	removed := ch(6)
	require.Contains(t, removed, map[string]any{"url": b, "field": "backend", "old": backend, "new": nil})
	require.Equal(t, "remove", lines[6]["op"])
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	require.NoError(t, err)
	defer f.Close()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); {
		n++
	}
	return n
}

// SIGUSR1's part: after logrotate moved the file away, ReopenLogs makes a
// new one, and no line is lost between the two.
func TestReopenLogsAfterRotation(t *testing.T) {
	bs := startBackends(t, synth.Knobs{Name: "a"})
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	logs := &jsonLog{}
	cfg := testConfig(bs, nil)
	cfg.AccessLog = config.AccessLog{Mode: "on", File: path}
	l := runLBD(t, cfg, logs.logger(), bs)
	for range 3 {
		l.get(t, "/")
	}
	require.NoError(t, os.Rename(path, path+".1"))
	require.NoError(t, l.d.ReopenLogs(context.Background()))
	for range 2 {
		l.get(t, "/")
	}
	require.NoError(t, l.d.Shutdown(context.Background()))
	require.Equal(t, 3, countLines(t, path+".1"), "the lines before the reopen, in the rotated file")
	require.Equal(t, 2, countLines(t, path), "the lines after it, in the new file")
	require.Len(t, logs.find("access log reopened"), 1)
}

func TestReopenLogsWithoutAFileDoesNothing(t *testing.T) {
	l := startLBD(t, startBackends(t, synth.Knobs{Name: "a"}), nil)
	require.NoError(t, l.d.ReopenLogs(context.Background()))
}

// "stopped" is the last line, and when it is written the access log has
// every request's line on disk.
func TestStoppedIsLastAfterTheAccessLog(t *testing.T) {
	bs := startBackends(t, synth.Knobs{Name: "a"})
	path := filepath.Join(t.TempDir(), "access.log")
	var atStop = -1
	logs := &jsonLog{}
	logs.onLine = func(m map[string]any) {
		if m["msg"] == "stopped" {
			atStop = countLines(t, path)
		}
	}
	cfg := testConfig(bs, nil)
	cfg.AccessLog = config.AccessLog{Mode: "on", File: path}
	require.NoError(t, cfg.Validate())
	d, err := New(Options{Config: cfg, Logger: logs.logger(), Getenv: func(string) string { return "" }})
	require.NoError(t, err)
	require.NoError(t, d.Start())
	for range 5 {
		resp, err := http.Get("http://" + d.DataAddr() + "/")
		require.NoError(t, err)
		resp.Body.Close()
	}
	require.NoError(t, d.Shutdown(context.Background()))
	require.Equal(t, "stopped", logs.last()["msg"])
	require.Equal(t, 5, atStop, "every access line is on disk before \"stopped\"")
}

func TestErrAttr(t *testing.T) {
	ve := &config.ValidationError{File: "c.json", Problems: []config.Problem{{Path: "backends[0].url", Message: "bad"}, {Path: "policy", Message: "unknown"}}}
	cases := []struct {
		err  error
		want slog.Attr
	}{
		{errors.New("one"), slog.String("err", "one")},
		{ve, slog.Any("problems", []string{"c.json: backends[0].url: bad", "c.json: policy: unknown"})},
		{errors.Join(errors.New("a"), fmt.Errorf("wrapped: %w", errors.New("b\nc"))), slog.Any("problems", []string{"a", "wrapped: b", "c"})},
	}
	for _, c := range cases {
		require.Equal(t, c.want.String(), ErrAttr(c.err).String())
	}
}
