package daemon

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/internal/synth"
)

// rawExchange sends payload on a new TCP connection to addr and returns the
// status line of the answer ("" when the connection ended without one).
// halfClose shuts the sending side after the payload (a client that
// stopped sending), abort closes the connection at once (a client that
// went away); otherwise the connection stays open while the answer is read.
func rawExchange(t *testing.T, addr, payload string, halfClose, abort bool) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, payload)
	require.NoError(t, err)
	if abort {
		require.NoError(t, conn.(*net.TCPConn).SetLinger(0))
		return ""
	}
	if halfClose {
		require.NoError(t, conn.(*net.TCPConn).CloseWrite())
	}
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second))) // a safety net only
	line, _ := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line)
}

// statusOf returns the code of a status line such as "HTTP/1.1 400 Bad Request".
func statusOf(line string) string {
	f := strings.Fields(line)
	if len(f) < 2 {
		return ""
	}
	return f[1]
}

// backendRows returns /admin/backends' rows by URL.
func backendRows(t *testing.T, adminURL string) map[string]map[string]any {
	t.Helper()
	rows := map[string]map[string]any{}
	for _, st := range mustAdmin(t, adminURL, "GET", "/admin/backends", "")["backends"].([]any) {
		m := st.(map[string]any)
		rows[m["url"].(string)] = m
	}
	return rows
}

// codesOf sums lbd_requests_total by code.
func codesOf(t *testing.T, adminURL string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, m := range scrape(t, adminURL)["lbd_requests_total"].GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == "code" {
				out[lp.GetValue()] += m.GetCounter().GetValue()
			}
		}
	}
	return out
}

func mustGet200(t *testing.T, url string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "X-Lbd-Reject %q", resp.Header.Get("X-Lbd-Reject"))
}

// Item 1 of issue 19: a request whose body the client botches is the
// client's failure. Before, each of these counted against the backend that
// was reading it, and ten of them opened every breaker, so that everyone
// got 503 no-backend.
func TestClientBodyFailuresNeverCountAgainstABackend(t *testing.T) {
	head := "POST / HTTP/1.1\r\nHost: lbd\r\n"
	for _, c := range []struct {
		name, payload    string
		halfClose, abort bool
		want, logged     string // the status the client reads ("" none) and the one counted
	}{
		{"malformed chunked body", head + "Transfer-Encoding: chunked\r\n\r\nzz\r\n", false, false, "400", "400"},
		{"chunked body over max_body_bytes", head + "Transfer-Encoding: chunked\r\n\r\n800\r\n" + strings.Repeat("x", 2048) + "\r\n0\r\n\r\n", false, false, "413", "413"},
		{"truncated buffered body", head + "Content-Length: 100\r\n\r\n0123456789", true, false, "400", "400"},
		{"truncated streamed body", head + "Content-Length: 1000\r\n\r\n0123456789", true, false, "400", "400"},
		{"buffered upload aborted", head + "Content-Length: 100\r\n\r\n0123", false, true, "", "499"},
		{"streamed upload aborted after the headers", head + "Content-Length: 1000\r\n\r\n", false, true, "", "499"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, aURL := startBodyBackend(t, http.StatusOK)
			_, bURL := startBodyBackend(t, http.StatusOK)
			l := startLBD(t, nil, func(cfg *config.Config) {
				cfg.Backends = []config.Backend{{URL: aURL, Weight: 1, Protocol: "http1"}, {URL: bURL, Weight: 1, Protocol: "http1"}}
				cfg.Admission.MaxBodyBytes = 1024
				cfg.Retries.BufferBodyBytes = 512 // bodies up to 512 bytes are read before admission, larger ones streamed
				cfg.Breaker.FailureThreshold = 3
				cfg.Outlier.ConsecutiveGatewayErr, cfg.Outlier.Consecutive5xx = 3, 3
				cfg.Outlier.Interval = config.Duration(50 * time.Millisecond)
				cfg.Health.Disabled = true
			})
			addr := strings.TrimPrefix(l.url, "http://")
			for range 10 {
				require.Equal(t, c.want, statusOf(rawExchange(t, addr, c.payload, c.halfClose, c.abort)))
			}
			eventually(t, 5*time.Second, "every attempt is counted with the client's status", func() bool {
				return codesOf(t, l.adminURL)[c.logged] == 10
			})
			for url, row := range backendRows(t, l.adminURL) {
				require.Equal(t, 0.0, row["failures"], "%s: %v", url, row)
				require.Equal(t, "closed", row["breaker"], url)
				require.Equal(t, "healthy", row["state"], url)
			}
			mustGet200(t, l.url+"/")
		})
	}
}

// inflight is what a stalled client could hold: admission places and
// backend slots.
func inflight(t *testing.T, l *testLBD) (admission, backends int64) {
	t.Helper()
	admission = l.d.AdmissionStatus().Admission.Inflight
	for _, h := range l.sched().Picker().Backends() {
		backends += h.Inflight()
	}
	return admission, backends
}

func requireReleased(t *testing.T, l *testLBD, what string) {
	t.Helper()
	eventually(t, 5*time.Second, what+": admission places and backend slots are released", func() bool {
		a, b := inflight(t, l)
		return a == 0 && b == 0
	})
}

// Item 2 of issue 19: slow clients cannot hold lbd's places. Before, a body
// sent at a byte a second held an admission place, a backend slot and a
// backend connection with no time limit.
func TestStalledUploadsAreCutAndReleaseTheirPlaces(t *testing.T) {
	_, bURL := startBodyBackend(t, http.StatusOK)
	l := startLBD(t, nil, func(cfg *config.Config) {
		cfg.Backends = []config.Backend{{URL: bURL, Weight: 1, Protocol: "http1"}}
		cfg.Timeouts.ClientStall = config.Duration(300 * time.Millisecond)
		cfg.Retries.BufferBodyBytes = 512
		cfg.Health.Disabled = true
	})
	addr := strings.TrimPrefix(l.url, "http://")
	for _, c := range []struct {
		name, payload string
		holds         bool // whether the stalled request holds places while it waits
	}{
		{"small body, read before admission", "POST / HTTP/1.1\r\nHost: lbd\r\nContent-Length: 100\r\n\r\n0123456789", false},
		{"large body, streamed to the backend", "POST / HTTP/1.1\r\nHost: lbd\r\nContent-Length: 1000000\r\n\r\n0123456789", true},
		{"chunked body", "POST / HTTP/1.1\r\nHost: lbd\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			require.NoError(t, err)
			defer conn.Close()
			_, err = io.WriteString(conn, c.payload)
			require.NoError(t, err)
			if c.holds {
				eventually(t, 5*time.Second, "the upload reaches the backend", func() bool {
					a, b := inflight(t, l)
					return a == 1 && b == 1
				})
			} else {
				a, b := inflight(t, l)
				require.Equal(t, [2]int64{0, 0}, [2]int64{a, b}, "a body being buffered holds no place")
			}
			require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
			start := time.Now()
			line, _ := bufio.NewReader(conn).ReadString('\n')
			require.Equal(t, "408", statusOf(line), "the stalled client is told why")
			require.Less(t, time.Since(start), 5*time.Second)
			requireReleased(t, l, c.name)
			mustGet200(t, l.url+"/")
		})
	}
	for url, row := range backendRows(t, l.adminURL) {
		require.Equal(t, 0.0, row["failures"], "%s: a stalled client is not the backend's failure", url)
	}
	require.Equal(t, 3.0, codesOf(t, l.adminURL)["408"])
}

// A client that never reads a large response is cut after client_stall,
// over HTTP/1.1 (the connection's write deadline) and over HTTP/2, where
// flow control blocks the stream while the connection stays healthy.
func TestClientsThatStopReadingAreCut(t *testing.T) {
	bs := startBackends(t, synth.Knobs{Name: "big", Size: 32 << 20})
	l := startLBD(t, bs, func(cfg *config.Config) {
		cfg.Timeouts.ClientStall = config.Duration(time.Second) // long enough to see the stream held before the cut
		cfg.H2C = true
	})
	t.Run("http1", func(t *testing.T) {
		conn, err := net.Dial("tcp", strings.TrimPrefix(l.url, "http://"))
		require.NoError(t, err)
		defer conn.Close()
		require.NoError(t, conn.(*net.TCPConn).SetReadBuffer(4<<10))
		_, err = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: lbd\r\n\r\n")
		require.NoError(t, err)
		// Until the response headers are sent the request holds both; from
		// then on, while the body streams, only the backend slot.
		eventually(t, 5*time.Second, "a response streaming to its client holds its backend slot, not an admission place",
			func() bool { a, b := inflight(t, l); return a == 0 && b == 1 })
		requireReleased(t, l, "a client that reads nothing")
	})
	t.Run("http2", func(t *testing.T) {
		tr := &http.Transport{Protocols: new(http.Protocols)}
		tr.Protocols.SetUnencryptedHTTP2(true)
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get(l.url + "/")
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, 2, resp.ProtoMajor)
		requireReleased(t, l, "an HTTP/2 stream nobody reads")
		_, err = io.Copy(io.Discard, resp.Body)
		require.Error(t, err, "the stream was reset")
		resp2, err := (&http.Client{Transport: tr}).Get(l.url + "/")
		require.NoError(t, err, "the connection itself is fine")
		resp2.Body.Close()
	})
}

// gaugeOf reads a gauge or counter without labels from /metrics.
func gaugeOf(t *testing.T, adminURL, name string) float64 {
	t.Helper()
	mf, ok := scrape(t, adminURL)[name]
	require.True(t, ok, name)
	m := mf.GetMetric()[0]
	if g := m.GetGauge(); g != nil {
		return g.GetValue()
	}
	return m.GetCounter().GetValue()
}

// served reports whether a new connection gets an answer.
func served(addr string) bool {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: lbd\r\n\r\n"); err != nil {
		return false
	}
	line, _ := bufio.NewReader(conn).ReadString('\n')
	return statusOf(line) == "200"
}

// Item 10 of issue 19: idle connections cannot take every descriptor.
// Beyond admission.max_connections new connections are closed at accept
// (counted), the admin listener and the probes keep working, and the cap
// follows a reload.
func TestMaxConnectionsRefusesBeyondTheCap(t *testing.T) {
	l := startLBD(t, startBackends(t, synth.Knobs{Name: "a"}), func(cfg *config.Config) {
		cfg.Admission.MaxConnections = 5
	})
	addr := strings.TrimPrefix(l.url, "http://")
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for range 5 {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		idle = append(idle, c)
	}
	eventually(t, 5*time.Second, "the idle connections are counted", func() bool {
		return gaugeOf(t, l.adminURL, "lbd_connections_open") == 5
	})
	require.False(t, served(addr), "a sixth connection is refused")
	require.GreaterOrEqual(t, gaugeOf(t, l.adminURL, "lbd_connections_refused_total"), 1.0)
	mustAdmin(t, l.adminURL, "GET", "/admin/backends", "") // the admin listener is not behind the cap

	require.NoError(t, l.reload(t, testConfig(l.backends, func(c *config.Config) { c.Admission.MaxConnections = 6 })))
	require.True(t, served(addr), "the new cap applies at once")

	idle[0].Close()
	idle = idle[1:]
	eventually(t, 5*time.Second, "a closed connection gives its place back", func() bool {
		return gaugeOf(t, l.adminURL, "lbd_connections_open") == 4
	})
}

func TestMaxConnectionsFollowsTheDescriptorLimit(t *testing.T) {
	cfg := testConfig(startBackends(t, synth.Knobs{Name: "a"}), nil)
	d, err := New(Options{Config: cfg, Logger: slog.New(slog.DiscardHandler), Getenv: func(string) string { return "" },
		FDLimit: func() uint64 { return 1024 }})
	require.NoError(t, err)
	require.NoError(t, d.Start())
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, d.Shutdown(ctx))
	}()
	require.Equal(t, 448.0, gaugeOf(t, "http://"+d.AdminAddr(), "lbd_connections_limit"),
		"10000 configured, but 1024 descriptors serve (1024 - 128) / 2")
}

// Slow uploads once held every place of an adaptive limit that a latency
// spike had lowered, and with nothing completing the limit never rose
// again: one client locked everyone out. Requests still receiving their
// body now count for the hard cap only.
func TestSlowUploadsCannotHoldTheAdaptiveLimit(t *testing.T) {
	_, bURL := startBodyBackend(t, http.StatusOK)
	l := startLBD(t, nil, func(cfg *config.Config) {
		cfg.Backends = []config.Backend{{URL: bURL, Weight: 1, Protocol: "http1"}}
		cfg.AIMD.MinLimit, cfg.AIMD.MaxLimit = 2, 2 // the limit a spike left behind, pinned
		cfg.Health.Disabled = true
	})
	addr := strings.TrimPrefix(l.url, "http://")
	var uploads []net.Conn
	defer func() {
		for _, c := range uploads {
			c.Close()
		}
	}()
	for range 4 {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		uploads = append(uploads, c)
		_, err = io.WriteString(c, "POST / HTTP/1.1\r\nHost: lbd\r\nContent-Length: 1000000\r\n\r\nfirst bytes")
		require.NoError(t, err)
	}
	eventually(t, 5*time.Second, "every upload is under way", func() bool {
		return l.d.AdmissionStatus().Admission.Uploading == 4
	})
	for range 10 {
		mustGet200(t, l.url+"/")
	}
}

// Over HTTP/2 a stalled upload is one stream among others: it is cut
// (408) and the connection goes on.
func TestStalledHTTP2UploadIsCut(t *testing.T) {
	_, bURL := startBodyBackend(t, http.StatusOK)
	l := startLBD(t, nil, func(cfg *config.Config) {
		cfg.Backends = []config.Backend{{URL: bURL, Weight: 1, Protocol: "http1"}}
		cfg.Timeouts.ClientStall = config.Duration(300 * time.Millisecond)
		cfg.H2C = true
		cfg.Health.Disabled = true
	})
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	pr, pw := io.Pipe()
	defer pw.Close()
	go func() { _, _ = pw.Write([]byte("a few bytes, then nothing")) }()
	req, err := http.NewRequest(http.MethodPost, l.url+"/", pr)
	require.NoError(t, err)
	resp, err := client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 2, resp.ProtoMajor)
	require.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
	requireReleased(t, l, "a stalled HTTP/2 upload")
	resp, err = client.Get(l.url + "/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}
