package daemon

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/internal/loadgen"
	"github.com/lbd/lbd/internal/synth"
)

// quiet keeps the breaker, outlier detection and the adaptive limit out of
// tests about retries, which send failures and bursts on purpose.
func quiet(cfg *config.Config) {
	cfg.Breaker.FailureThreshold = 1_000_000
	cfg.Outlier.Disabled = true
	cfg.AIMD.Enabled = false
}

func TestPerClientRateLimit(t *testing.T) {
	l := startLBD(t, startBackends(t, synth.Knobs{Name: "a"}), func(cfg *config.Config) {
		cfg.Admission.RatePerClient, cfg.Admission.BurstPerClient = 0.5, 2
		cfg.Admission.TrustedProxies = []string{"127.0.0.1"}
	})
	for range 2 {
		resp, _ := l.get(t, "/", "X-Forwarded-For", "203.0.113.1")
		require.Equal(t, http.StatusOK, resp.StatusCode, "within the burst")
	}
	resp, body := l.get(t, "/", "X-Forwarded-For", "203.0.113.1")
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	require.Equal(t, "rate-limit", resp.Header.Get("X-Lbd-Reject"))
	require.Equal(t, "2", resp.Header.Get("Retry-After"), "one token every 2s")
	require.Contains(t, body, "rate-limit")

	resp, _ = l.get(t, "/", "X-Forwarded-For", "203.0.113.2")
	require.Equal(t, http.StatusOK, resp.StatusCode, "another client behind the trusted proxy has its own bucket")
	resp, _ = l.get(t, "/", "X-Forwarded-For", "6.6.6.6, 203.0.113.1")
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "a forged entry to the left changes nothing")

	st := l.d.AdmissionStatus()
	require.EqualValues(t, 2, st.Admission.RejectedRateLimit)
	require.Equal(t, 2, st.Admission.Clients)
}

func TestRateLimitIgnoresForwardedForFromUntrustedPeers(t *testing.T) {
	l := startLBD(t, startBackends(t, synth.Knobs{Name: "a"}), func(cfg *config.Config) {
		cfg.Admission.RatePerClient, cfg.Admission.BurstPerClient = 0.5, 1
	})
	resp, _ := l.get(t, "/", "X-Forwarded-For", "203.0.113.1")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, _ = l.get(t, "/", "X-Forwarded-For", "203.0.113.2")
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "the peer is the client: a new header is not a new bucket")
}

// holdOne starts a request that the backend holds until the test ends,
// and returns once the backend has it.
func holdOne(t *testing.T, l *testLBD, b *synth.Running) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, l.url+"/", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	require.Eventually(t, func() bool { return b.Server.Inflight() == 1 }, 5*time.Second, time.Millisecond)
}

func TestGlobalInflightCap(t *testing.T) {
	backends := startBackends(t, synth.Knobs{Name: "a", HangRate: 1})
	l := startLBD(t, backends, func(cfg *config.Config) {
		cfg.Admission.MaxInflight, cfg.AIMD.MaxLimit, cfg.AIMD.MinLimit = 1, 1, 1
		cfg.AIMD.Enabled = false
	})
	holdOne(t, l, backends[0])
	resp, _ := l.get(t, "/")
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, "overload", resp.Header.Get("X-Lbd-Reject"))
	require.Equal(t, "1", resp.Header.Get("Retry-After"))
	st := l.d.AdmissionStatus()
	require.EqualValues(t, 1, st.Admission.Inflight)
	require.EqualValues(t, 1, st.Admission.RejectedOverload)
	require.Nil(t, st.AIMD, "no limiter when aimd is disabled")
}

// The adaptive limit climbs while it binds under target and falls while it
// binds over target. max_limit 16 against 16 clients keeps the limit in
// play in both phases (a limit out of play is not cut: issue 10), and the
// lowest limit is watched during the slow phase, since an unused limit
// grows back once the load stops.
func TestAdaptiveLimitRisesAndFalls(t *testing.T) {
	backends := startBackends(t, synth.Knobs{Name: "a"})
	l := startLBD(t, backends, func(cfg *config.Config) {
		// A target far above a loaded machine's loopback latency, far below the slow phase's.
		cfg.AIMD.TargetLatency = config.Duration(100 * time.Millisecond)
		cfg.AIMD.Interval = config.Duration(50 * time.Millisecond)
		cfg.AIMD.MinLimit, cfg.AIMD.MaxLimit = 2, 16
		cfg.AIMD.SlowStart = true
	})
	st := l.d.AdmissionStatus()
	require.EqualValues(t, 2, st.AIMD.Limit, "starts at min_limit, in slow start")
	require.True(t, st.AIMD.SlowStart)
	load := func() *loadgen.Result {
		res, err := loadgen.Run(context.Background(), loadgen.Config{
			URL: l.url + "/", Concurrency: 16, N: loadgen.MaxN, Duration: 500 * time.Millisecond,
		})
		require.NoError(t, err)
		return res
	}
	res := load() // fast backend, 16 clients against a limit of 2: reached every interval
	require.Positive(t, res.Status[http.StatusOK])
	require.Positive(t, res.Reject["overload"], "the limit binds at first")
	high := l.d.AdmissionStatus().AIMD.Limit
	require.GreaterOrEqual(t, high, int64(8), "under target and reached: the limit doubled and doubled")

	backends[0].Server.SetKnobs(synth.Knobs{Name: "a", Latency: 150 * time.Millisecond})
	lowest := make(chan int64)
	stop := make(chan struct{})
	go func() { // the lowest limit published while the slow load runs
		low := high
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				lowest <- low
				return
			case <-tick.C:
				low = min(low, l.d.AdmissionStatus().AIMD.Limit)
			}
		}
	}()
	load() // now every interval's latency is over the target
	close(stop)
	low := <-lowest
	st = l.d.AdmissionStatus()
	require.Less(t, low, high, "over target: the limit fell (%+v)", st.AIMD)
	require.GreaterOrEqual(t, low, int64(2))
	require.False(t, st.AIMD.SlowStart)
	require.Positive(t, st.AIMD.Decreases)

	metrics := l.metrics(t)
	require.Contains(t, metrics, "lbd_admission_limit ")
	require.Contains(t, metrics, "lbd_admission_inflight ")
}

func (l *testLBD) metrics(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(l.adminURL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

func TestConnectionRefusedUnderConcurrentGETs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close()) // connection refused from now on

	l := startLBD(t, startBackends(t, synth.Knobs{Name: "alive"}), func(cfg *config.Config) {
		quiet(cfg)
		cfg.Policy = "rr"
		cfg.Backends = append(cfg.Backends, config.Backend{URL: dead, Weight: 1, Protocol: "http1"})
	})
	// Three clients: the retry budget always allows three retries at once,
	// so every refused try can be retried (more clients all failing at once
	// would meet the budget, which TestRetryBudgetStopsRetriesWhenMostFail covers).
	res, err := loadgen.Run(context.Background(), loadgen.Config{URL: l.url + "/", Concurrency: 3, N: 100, Duration: 10 * time.Second})
	require.NoError(t, err)
	require.Equal(t, map[int]int64{http.StatusOK: 100}, res.Status, "every GET answered by the live backend")
	require.Equal(t, map[string]int64{"alive": 100}, res.Backend)
	require.Regexp(t, `lbd_retries_total [1-9]`, l.metrics(t), "the refused tries were retried")
}

// bodyBackend records what it receives and answers with status.
type bodyBackend struct {
	status atomic.Int32
	posts  atomic.Int64 // POST requests received
	puts   atomic.Int64 // PUT requests received
	mu     sync.Mutex
	sums   [][32]byte
}

func startBodyBackend(t *testing.T, status int) (*bodyBackend, string) {
	b := &bodyBackend{}
	b.status.Store(int32(status))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		data, _ := io.ReadAll(r.Body)
		switch r.Method {
		case http.MethodPost:
			b.posts.Add(1)
		case http.MethodPut:
			b.puts.Add(1)
		}
		b.mu.Lock()
		b.sums = append(b.sums, sha256.Sum256(data))
		b.mu.Unlock()
		w.WriteHeader(int(b.status.Load()))
	}))
	t.Cleanup(srv.Close)
	return b, srv.URL
}

// A buffered body answered 503 is sent again whole when the method is
// idempotent (PUT), and not at all when it is not (POST): the backend may
// have acted on the POST, so the client gets that backend's answer.
func TestBufferedBodyIsRetriedWholeOnlyWhenIdempotent(t *testing.T) {
	failing, failURL := startBodyBackend(t, http.StatusServiceUnavailable)
	ok, okURL := startBodyBackend(t, http.StatusOK)
	l := startLBD(t, nil, func(cfg *config.Config) {
		quiet(cfg)
		cfg.Policy = "rr"
		cfg.Retries.BufferBodyBytes = 4096
		cfg.Backends = []config.Backend{{URL: failURL, Weight: 1, Protocol: "http1"}, {URL: okURL, Weight: 1, Protocol: "http1"}}
	})
	body := bytes.Repeat([]byte("0123456789"), 300) // 3000 bytes: buffered
	send := func(method string) int {
		req, err := http.NewRequest(method, l.url+"/", bytes.NewReader(body))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	for range 6 {
		require.Equal(t, http.StatusOK, send(http.MethodPut), "the 503 was retried on the other backend")
	}
	require.Equal(t, int64(6), ok.puts.Load(), "each PUT reached the good backend once")
	require.Positive(t, failing.puts.Load(), "first tries on the failing backend were retried")

	var answered503 int64
	for range 6 {
		if send(http.MethodPost) == http.StatusServiceUnavailable {
			answered503++
		}
	}
	require.Equal(t, int64(6), failing.posts.Load()+ok.posts.Load(), "each POST was sent once")
	require.Equal(t, failing.posts.Load(), answered503, "a POST the failing backend got is answered with its 503")
	want := sha256.Sum256(body)
	for _, b := range []*bodyBackend{failing, ok} {
		for _, s := range b.sums {
			require.Equal(t, want, s, "each try got the whole body")
		}
	}
}

func TestPOSTWithUnbufferedBodyIsNeverSentTwice(t *testing.T) {
	a, aURL := startBodyBackend(t, http.StatusServiceUnavailable)
	b, bURL := startBodyBackend(t, http.StatusServiceUnavailable)
	l := startLBD(t, nil, func(cfg *config.Config) {
		quiet(cfg)
		cfg.Retries.Max, cfg.Retries.BufferBodyBytes = 3, 1024
		cfg.Backends = []config.Backend{{URL: aURL, Weight: 1, Protocol: "http1"}, {URL: bURL, Weight: 1, Protocol: "http1"}}
	})
	big := bytes.Repeat([]byte("x"), 8192) // over buffer_body_bytes: streamed
	for i := range 4 {
		var body io.Reader = bytes.NewReader(big)
		if i%2 == 1 {
			body = struct{ io.Reader }{bytes.NewReader(big)} // unknown length: chunked
		}
		resp, err := http.Post(l.url+"/", "application/octet-stream", body)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "the backend's answer, not retried")
		require.Equal(t, int64(i+1), a.posts.Load()+b.posts.Load(), "request %d reached exactly one backend", i)
	}
	require.NotRegexp(t, `lbd_retries_total [1-9]`, l.metrics(t))
}

func TestRetryBudgetStopsRetriesWhenMostFail(t *testing.T) {
	knobs := synth.Knobs{Latency: 2 * time.Millisecond, ErrorRate: 1, ErrorStatus: http.StatusServiceUnavailable}
	backends := startBackends(t, knobs, knobs, knobs)
	l := startLBD(t, backends, func(cfg *config.Config) {
		quiet(cfg)
		cfg.Retries.Max, cfg.Retries.BudgetPercent = 2, 20
	})
	const clients, each = 20, 40
	const n = clients * each
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for range each {
				resp, err := http.Get(l.url + "/")
				if err == nil {
					resp.Body.Close()
				}
			}
		})
	}
	wg.Wait()
	var total int64
	for _, b := range backends {
		total += b.Server.Requests()
	}
	retries := total - n
	// The run takes well under the budget's 10 s window: the retries it may
	// have are 20% of its requests and the floor of 10 a second over the window.
	budget := int64(n*20/100 + 10*10)
	t.Logf("%d requests, all failing: %d retries (budget %d; without one: %d)", n, retries, budget, 2*n)
	require.Positive(t, retries, "some retries were allowed")
	// (+2: a count that lands while a second's slot is being reset is lost.)
	require.LessOrEqual(t, retries, budget+2, "the budget held retries to its share of the requests")
}

func TestNoRetryAfterBytesReachedTheClient(t *testing.T) {
	var hits atomic.Int64
	broken := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusOK) // no length: lbd streams (flushes) what arrives
		_, _ = w.Write([]byte("partial"))
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler) // drop the connection mid-body
	})
	s1, s2 := httptest.NewServer(broken), httptest.NewServer(broken)
	t.Cleanup(s1.Close)
	t.Cleanup(s2.Close)
	l := startLBD(t, nil, func(cfg *config.Config) {
		quiet(cfg)
		cfg.Retries.Max = 3
		cfg.Backends = []config.Backend{{URL: s1.URL, Weight: 1, Protocol: "http1"}, {URL: s2.URL, Weight: 1, Protocol: "http1"}}
	})
	resp, err := http.Get(l.url + "/")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Error(t, err, "the client sees the body break off")
	require.Equal(t, "partial", string(got))
	require.EqualValues(t, 1, hits.Load(), "once bytes reached the client the request is not tried again")
}

func TestRequestBodyLimit(t *testing.T) {
	b, bURL := startBodyBackend(t, http.StatusOK)
	l := startLBD(t, nil, func(cfg *config.Config) {
		cfg.Admission.MaxBodyBytes = 1024
		cfg.Backends = []config.Backend{{URL: bURL, Weight: 1, Protocol: "http1"}}
	})
	for _, c := range []struct {
		name    string
		body    io.Reader
		want    int
		reaches bool // the backend sees the request
	}{
		{"declared length over the limit: refused before any backend", bytes.NewReader(make([]byte, 2048)), http.StatusRequestEntityTooLarge, false},
		// A chunked body is streamed; the backend sees its start, then
		// the upload breaks off at the limit and the client gets 413.
		{"chunked body over the limit: cut off", struct{ io.Reader }{bytes.NewReader(make([]byte, 2048))}, http.StatusRequestEntityTooLarge, true},
		{"within the limit", bytes.NewReader(make([]byte, 1024)), http.StatusOK, true},
	} {
		before := b.posts.Load()
		resp, err := http.Post(l.url+"/", "application/octet-stream", c.body)
		require.NoError(t, err, c.name)
		resp.Body.Close()
		require.Equal(t, c.want, resp.StatusCode, c.name)
		if c.want == http.StatusRequestEntityTooLarge {
			require.Equal(t, "body-too-large", resp.Header.Get("X-Lbd-Reject"), c.name)
		}
		if !c.reaches {
			require.Equal(t, before, b.posts.Load(), c.name)
		}
	}
}

func TestSlowlorisIsCutOffWhileOthersAreServed(t *testing.T) {
	l := startLBD(t, startBackends(t, synth.Knobs{Name: "a"}), func(cfg *config.Config) {
		cfg.Timeouts.ClientReadHeader = config.Duration(300 * time.Millisecond)
	})
	conn, err := net.Dial("tcp", strings.TrimPrefix(l.url, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	// Headers started and never finished: the slowloris holds its
	// connection open one byte at a time, and here it simply stops.
	_, err = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: lbd\r\nX-Slow: a")
	require.NoError(t, err)

	resp, _ := l.get(t, "/")
	require.Equal(t, http.StatusOK, resp.StatusCode, "other clients are served meanwhile")

	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second))) // a safety net, far beyond the timeout
	start := time.Now()
	line, err := bufio.NewReader(conn).ReadString('\n')
	var ne net.Error
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "lbd cut the connection before our safety net")
	require.True(t, err != nil || strings.Contains(line, "408"), "the connection ends without a response: %q %v", line, err)
	t.Logf("slow client cut off after %v", time.Since(start).Round(10*time.Millisecond))

	resp, _ = l.get(t, "/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestOversizedHeadersAreRefused(t *testing.T) {
	l := startLBD(t, startBackends(t, synth.Knobs{Name: "a"}), func(cfg *config.Config) {
		cfg.Timeouts.MaxHeaderBytes = 4096
	})
	resp, _ := l.get(t, "/", "X-Big", strings.Repeat("b", 64<<10))
	require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)
}
