package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
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
	"github.com/lbd/lbd/internal/synth"
	"github.com/lbd/lbd/routing"
)

// headerBackend records what reaches it.
type headerBackend struct {
	mu    sync.Mutex
	seen  []*http.Request
	paths []string
}

func startHeaderBackend(t *testing.T) (*headerBackend, string) {
	b := &headerBackend{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		b.mu.Lock()
		b.seen = append(b.seen, r)
		b.paths = append(b.paths, r.URL.Path)
		b.mu.Unlock()
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	t.Cleanup(srv.Close)
	return b, srv.URL
}

func (b *headerBackend) last(t *testing.T) *http.Request {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	require.NotEmpty(t, b.seen, "the request reached the backend")
	return b.seen[len(b.seen)-1]
}

func (b *headerBackend) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.seen)
}

func startHeaderLBD(t *testing.T, mutate func(*config.Config)) (*testLBD, *headerBackend) {
	b, u := startHeaderBackend(t)
	l := startLBD(t, nil, func(cfg *config.Config) {
		cfg.Backends = []config.Backend{{URL: u, Weight: 1, Protocol: "http1"}}
		if mutate != nil {
			mutate(cfg)
		}
	})
	return l, b
}

// Item 4 of issue 19: "Connection: X-Request-Id" made ReverseProxy drop the
// generated id before it reached the backend; lbd's own headers are now set
// after the hop-by-hop ones are removed.
func TestLBDsOwnHeadersCannotBeStrippedOrForged(t *testing.T) {
	l, b := startHeaderLBD(t, nil)
	addr := strings.TrimPrefix(l.url, "http://")
	line := rawExchange(t, addr, "GET / HTTP/1.1\r\nHost: lbd\r\n"+
		"Connection: X-Request-Id, X-Forwarded-For, X-Forwarded-Proto, X-Real-IP, Via\r\n"+
		"X-Real-IP: 6.6.6.6\r\n\r\n", false, false)
	require.Equal(t, "200", statusOf(line))
	got := b.last(t).Header
	require.Len(t, got.Get("X-Request-Id"), 20, "the generated id reaches the backend: %v", got)
	require.Equal(t, "127.0.0.1", got.Get("X-Forwarded-For"))
	require.Equal(t, "http", got.Get("X-Forwarded-Proto"))
	require.Equal(t, []string{"127.0.0.1"}, got.Values("X-Real-Ip"), "the client's own claim is replaced")
	require.Equal(t, []string{"1.1 lbd-" + l.d.proxy.InstanceID()}, got.Values("Via"))

	for _, c := range []struct {
		name string
		ids  []string
		kept bool
	}{
		{"one printable id", []string{"abc-123_x.y"}, true},
		{"with a space", []string{"abc 123"}, false},
		{"too long", []string{strings.Repeat("a", 129)}, false},
		{"two values", []string{"a", "b"}, false},
		{"not ASCII", []string{"id-é"}, false},
	} {
		req, err := http.NewRequest(http.MethodGet, l.url+"/", nil)
		require.NoError(t, err)
		req.Header["X-Request-Id"] = c.ids
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err, c.name)
		resp.Body.Close()
		id, up := resp.Header.Get("X-Request-Id"), b.last(t).Header.Values("X-Request-Id")
		require.Equal(t, []string{id}, up, "%s: one id, the same both ways", c.name)
		if c.kept {
			require.Equal(t, c.ids[0], id, c.name)
		} else {
			require.Len(t, id, 20, "%s: replaced by a fresh xid", c.name)
		}
	}
}

func TestRealIPFollowsTheTrustedProxies(t *testing.T) {
	l, b := startHeaderLBD(t, func(cfg *config.Config) { cfg.Admission.TrustedProxies = []string{"127.0.0.1"} })
	resp, _ := l.get(t, "/", "X-Forwarded-For", "203.0.113.7", "X-Real-IP", "6.6.6.6")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "203.0.113.7", b.last(t).Header.Get("X-Real-Ip"), "named by the trusted proxy's X-Forwarded-For")
}

// Item 8: a request that comes back to the lbd that forwarded it is
// answered 508 instead of being multiplied.
func TestALoopIsDetected(t *testing.T) {
	b, u := startHeaderBackend(t)
	a := startLBD(t, nil, func(cfg *config.Config) {
		cfg.Backends = []config.Backend{{URL: u, Weight: 1, Protocol: "http1"}}
		cfg.Health.Disabled = true
	})
	other := startLBD(t, nil, func(cfg *config.Config) {
		cfg.Backends = []config.Backend{{URL: a.url, Weight: 1, Protocol: "http1"}}
		cfg.Health.Disabled = true
	})
	// a forwards to other, other to a: a loop through two lbds, which no
	// address check can see.
	mustAdmin(t, a.adminURL, "POST", "/admin/backend/add?url="+other.url, "")
	mustAdmin(t, a.adminURL, "POST", "/admin/backend/remove?url="+u, "")
	resp, _ := a.get(t, "/")
	require.Equal(t, http.StatusLoopDetected, resp.StatusCode)
	require.Equal(t, "loop", resp.Header.Get("X-Lbd-Reject"))
	require.Zero(t, b.count())
	require.Equal(t, 1.0, codesOf(t, other.adminURL)["508"], "one request went round once, and no more")
}

// Item 9: input limits and refusals, over raw TCP where bytes matter.
func TestHostileInputIsRefusedClearly(t *testing.T) {
	l, b := startHeaderLBD(t, nil)
	addr := strings.TrimPrefix(l.url, "http://")
	manyHeaders := func(n int) string {
		var sb strings.Builder
		for i := range n {
			sb.WriteString("X-H" + strings.Repeat("a", i%7) + ": v\r\n")
		}
		return sb.String()
	}
	for _, c := range []struct {
		name, payload, want string
	}{
		{"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", "405"},
		{"request target over max_uri_bytes", "GET /" + strings.Repeat("a", 9000) + " HTTP/1.1\r\nHost: lbd\r\n\r\n", "414"},
		{"1 MiB request target", "GET /" + strings.Repeat("a", 1<<20) + " HTTP/1.1\r\nHost: lbd\r\n\r\n", "431"},
		{"over max_header_count", "GET / HTTP/1.1\r\nHost: lbd\r\n" + manyHeaders(150) + "\r\n", "431"},
		{"10,000 headers", "GET / HTTP/1.1\r\nHost: lbd\r\n" + manyHeaders(10_000) + "\r\n", "431"},
	} {
		require.Equal(t, c.want, statusOf(rawExchange(t, addr, c.payload, false, false)), c.name)
	}
	require.Zero(t, b.count(), "none of them reached the backend")
	resp, _ := l.get(t, "/", "X-A", "1")
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// RFC 9112 6.1: after a request with both Content-Length and
// Transfer-Encoding the connection is closed, so that what a hop before
// lbd may have read as the next request is never served.
func TestContentLengthWithTransferEncodingClosesTheConnection(t *testing.T) {
	l, b := startHeaderLBD(t, nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(l.url, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "POST / HTTP/1.1\r\nHost: lbd\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"+
		"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: lbd\r\n\r\n")
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.True(t, resp.Close, "the answer says the connection ends")
	_, _ = io.Copy(io.Discard, resp.Body)
	n, err := br.Read(make([]byte, 1))
	require.Zero(t, n, "no second answer")
	require.ErrorIs(t, err, io.EOF, "the connection was closed")
	require.Equal(t, []string{"/"}, b.paths, "the request after it was never served")
}

// Item 9: max_inflight has one range, config.MaxInflight, whichever way it
// comes in: the config file, a JSON body, the query forms, the state file.
func TestMaxInflightHasOneRangeEverywhere(t *testing.T) {
	bs := startBackends(t, synth.Knobs{Name: "a"})
	l := startLBD(t, bs, nil)
	a := bs[0].URL()
	want := "max_inflight: must be between 0 (no cap) and 1000000, got "
	for _, n := range []string{"1000001", "2147483648", "9223372036854775807", "-1"} {
		code, m := adminCall(t, l.adminURL, "POST", "/admin/backends", `{"url":"http://127.0.0.1:1","max_inflight":`+n+`}`)
		require.Equal(t, http.StatusBadRequest, code, n)
		require.Equal(t, want+n, m["error"], "JSON body, %s", n)
		code, m = adminCall(t, l.adminURL, "POST", "/admin/backend/add?url=http://127.0.0.1:1&max_inflight="+n, "")
		require.Equal(t, http.StatusBadRequest, code, n)
		require.Equal(t, want+n, m["error"], "query add, %s", n)
		code, m = adminCall(t, l.adminURL, "POST", "/admin/backend/cap?url="+a+"&max_inflight="+n, "")
		require.Equal(t, http.StatusBadRequest, code, n)
		require.Equal(t, want+n, m["error"], "query cap, %s", n)

		_, err := config.Parse([]byte(`{"backends":[{"url":"http://127.0.0.1:1","max_inflight":` + n + `}]}`))
		require.ErrorContains(t, err, "backends[0]."+want+n, "config file, %s", n)
	}
	code, m := adminCall(t, l.adminURL, "POST", "/admin/backend/cap?url="+a+"&max_inflight=9223372036854775808", "")
	require.Equal(t, http.StatusBadRequest, code)
	require.Equal(t, "max_inflight: 9223372036854775808 is out of range", m["error"])
	code, _ = adminCall(t, l.adminURL, "POST", "/admin/backends", `{"url":"http://127.0.0.1:1","max_inflight":9223372036854775808}`)
	require.Equal(t, http.StatusBadRequest, code)
	mustAdmin(t, l.adminURL, "POST", "/admin/backend/cap?url="+a+"&max_inflight=1000000", "")

	_, probs, err := routing.DecodeState([]byte(`{"version":2,"overlay":{"pools":{"default":{"backends":{"`+a+`":{"max_inflight":2147483648}}}}},"file":{"pools":{}}}`), routing.FileRouting{})
	require.NoError(t, err)
	require.Len(t, probs, 1)
	require.Contains(t, probs[0], want+"2147483648", "the state file")
}

// Item 7: an admin-accepted sticky key used to corrupt the state file, and
// the next start set the whole file aside, losing drains and weights. Admin
// input is now judged by the config file's rules, and a state file with a
// bad entry keeps the others.
func TestBadAdminInputCannotCostTheStateFile(t *testing.T) {
	bs := startBackends(t, synth.Knobs{Name: "a"}, synth.Knobs{Name: "b"}, synth.Knobs{Name: "c"})
	a, b, c := bs[0].URL(), bs[1].URL(), bs[2].URL()
	dir := t.TempDir()
	state := filepath.Join(dir, "state.json")
	first := startDaemon(t, testConfig(bs, func(cfg *config.Config) { cfg.StateFile = state }))
	adminURL := "http://" + first.AdminAddr()
	code, m := adminCall(t, adminURL, "PUT", "/admin/policy", `{"policy":"lc","sticky":{"enabled":true,"key":"header:X Y"}}`)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, m["error"], `sticky.key: "X Y" is not a valid header name`)
	code, _ = adminCall(t, adminURL, "POST", "/admin/policy?sticky=on&sticky_key=header:X%20Y", "")
	require.Equal(t, http.StatusBadRequest, code, "the query form too")
	mustAdmin(t, adminURL, "POST", "/admin/drain?url="+b, "")
	mustAdmin(t, adminURL, "POST", "/admin/backend/weight?url="+a+"&weight=7", "")
	mustAdmin(t, adminURL, "POST", "/admin/backend/weight?url="+c+"&weight=3", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, first.Shutdown(ctx))

	// Corrupt one entry by hand, as a bug or an editor could: c's weight
	// out of range, and a policy with the sticky key the API refused.
	raw, err := os.ReadFile(state)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(raw, &doc))
	pool := doc["overlay"].(map[string]any)["pools"].(map[string]any)["default"].(map[string]any)
	pool["backends"].(map[string]any)[c].(map[string]any)["weight"] = 0
	pool["policy"] = map[string]any{"policy": "lc", "sticky": map[string]any{"enabled": true, "key": "header:X Y"}}
	raw, err = json.Marshal(doc)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(state, raw, 0o600))

	l := startLBD(t, bs, func(cfg *config.Config) { cfg.StateFile = state })
	rows := backendRows(t, l.adminURL)
	require.Equal(t, true, rows[b]["draining"], "the drain survived")
	require.Equal(t, 7.0, rows[a]["weight"], "and the weight")
	require.Equal(t, 1.0, rows[c]["weight"], "the bad entry alone is left out: the file's weight")
	pol := mustAdmin(t, l.adminURL, "GET", "/admin/policy", "")
	require.Equal(t, "p2c-ewma", pol["policy"], "the bad policy entry is left out")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		require.NotContains(t, e.Name(), "corrupt", "the file was not set aside")
	}
}

// Item 11: /debug/config shows what runs, after a reload as after an
// admin change, the settings outside the routing table included; a
// refused reload shows nothing of it.
func TestDebugConfigFollowsReloads(t *testing.T) {
	bs := startBackends(t, synth.Knobs{Name: "a"})
	l := startLBD(t, bs, nil)
	next := testConfig(bs, func(c *config.Config) {
		c.Policy = "rr"
		c.Admission.MaxBodyBytes = 12345
		c.Timeouts.ClientStall = config.Duration(7 * time.Second)
	})
	require.NoError(t, l.reload(t, next))
	eff := mustAdmin(t, l.adminURL, "GET", "/debug/config", "")
	require.Equal(t, "rr", eff["policy"])
	require.Equal(t, 12345.0, eff["admission"].(map[string]any)["max_body_bytes"])
	require.Equal(t, "7s", eff["timeouts"].(map[string]any)["client_stall"])

	bad := testConfig(bs, func(c *config.Config) {
		c.Admission.MaxBodyBytes = 999
		c.TLS.CertFile, c.TLS.KeyFile = filepath.Join(t.TempDir(), "missing.crt"), filepath.Join(t.TempDir(), "missing.key")
	})
	require.Error(t, l.reload(t, bad))
	eff = mustAdmin(t, l.adminURL, "GET", "/debug/config", "")
	require.Equal(t, 12345.0, eff["admission"].(map[string]any)["max_body_bytes"], "a refused reload changes nothing shown")
}

// A malformed chunked body that arrives with its headers is answered
// before any backend sees the request: garbage costs no backend
// connection (the transport drops one whose request broke off).
func TestMalformedChunkedBodyNeverReachesABackend(t *testing.T) {
	l, b := startHeaderLBD(t, nil)
	addr := strings.TrimPrefix(l.url, "http://")
	for range 5 {
		line := rawExchange(t, addr, "POST / HTTP/1.1\r\nHost: lbd\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false, false)
		require.Equal(t, "400", statusOf(line))
	}
	require.Zero(t, b.count())
	require.Equal(t, 5.0, codesOf(t, l.adminURL)["400"])
}
