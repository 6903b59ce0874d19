package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/scheduler"
)

// answering is a backend that answers every request with status and its
// own body and header, and counts what it got.
func answering(t *testing.T, status int, name string) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		n.Add(1)
		w.Header().Set("X-From", name)
		w.WriteHeader(status)
		_, _ = io.WriteString(w, name+" says "+http.StatusText(status))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(b)
}

var twoRetries = RetryOptions{Max: 2, BudgetPercent: 20, MinPerSecond: 10, BufferBodyBytes: 64 << 10}

// TestLastBackendAnswerOnExhaustedRetries is issue 10's fourth symptom: when
// every try got a 5xx, the client gets the last backend's own answer —
// status, headers, body — not lbd's 502; the access log counts the retries;
// and each 5xx still counts against its backend.
func TestLastBackendAnswerOnExhaustedRetries(t *testing.T) {
	t.Run("the only backend answers 503: its answer, though a retry was allowed", func(t *testing.T) {
		a, _ := answering(t, http.StatusServiceUnavailable, "a")
		p := startProxy(t, Options{Retries: twoRetries}, scheduler.RR, a.URL)
		code, hdr, body := get(t, p.url+"/x")
		require.Equal(t, http.StatusServiceUnavailable, code)
		require.Equal(t, "a says Service Unavailable", body)
		require.Equal(t, "a", hdr.Get("X-From"))
		require.Empty(t, hdr.Get("X-Lbd-Reject"), "the backend's answer, not lbd's")
		require.EqualValues(t, 1, p.backend(a.URL).Counters().Failures, "a failure for breaker and outlier detection")
		l := p.lines(t)[0]
		require.Equal(t, 503.0, l["status"])
		require.Equal(t, a.URL, l["backend"])
		require.Equal(t, 1.0, l["attempts"])
		require.Equal(t, 0.0, l["retries"])
	})
	t.Run("every backend answers 5xx: the last one's answer", func(t *testing.T) {
		a, _ := answering(t, http.StatusServiceUnavailable, "a")
		b, _ := answering(t, http.StatusBadGateway, "b")
		c, _ := answering(t, http.StatusInternalServerError, "c")
		p := startProxy(t, Options{Retries: twoRetries}, scheduler.RR, a.URL, b.URL, c.URL)
		code, hdr, body := get(t, p.url+"/x")
		require.Equal(t, http.StatusInternalServerError, code)
		require.Equal(t, "c says Internal Server Error", body)
		require.Equal(t, "c", hdr.Get("X-From"))
		for _, u := range []string{a.URL, b.URL, c.URL} {
			require.EqualValues(t, 1, p.backend(u).Counters().Failures, u)
		}
		for _, u := range []string{a.URL, b.URL} {
			require.Zero(t, p.backend(u).Inflight(), "the answers a later try replaced were released: %s", u)
		}
		require.Equal(t, 2.0, testutil.ToFloat64(p.h.metrics.retries))
		l := p.lines(t)[0]
		require.Equal(t, c.URL, l["backend"], "the log names the backend whose answer the client got")
		require.Equal(t, 3.0, l["attempts"])
		require.Equal(t, 2.0, l["retries"])
	})
	t.Run("retries.max reached: the last answer", func(t *testing.T) {
		a, _ := answering(t, http.StatusServiceUnavailable, "a")
		b, _ := answering(t, http.StatusServiceUnavailable, "b")
		c, cn := answering(t, http.StatusOK, "c")
		o := twoRetries
		o.Max = 1
		p := startProxy(t, Options{Retries: o}, scheduler.RR, a.URL, b.URL, c.URL)
		code, _, body := get(t, p.url+"/x")
		require.Equal(t, http.StatusServiceUnavailable, code)
		require.Equal(t, "b says Service Unavailable", body)
		require.Zero(t, cn.Load())
	})
	t.Run("a later backend does better: its answer", func(t *testing.T) {
		a, _ := answering(t, http.StatusServiceUnavailable, "a")
		b, _ := answering(t, http.StatusOK, "b")
		p := startProxy(t, Options{Retries: twoRetries}, scheduler.RR, a.URL, b.URL)
		code, _, body := get(t, p.url+"/x")
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, "b says OK", body)
		require.EqualValues(t, 1, p.backend(a.URL).Counters().Failures)
		require.Zero(t, p.backend(a.URL).Inflight())
	})
	t.Run("a large 5xx body is held on its connection and arrives whole", func(t *testing.T) {
		big := strings.Repeat("z", 3*heldBodyBytes)
		a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, big)
		}))
		t.Cleanup(a.Close)
		p := startProxy(t, Options{Retries: twoRetries}, scheduler.RR, a.URL)
		code, _, body := get(t, p.url+"/x")
		require.Equal(t, http.StatusServiceUnavailable, code)
		require.Equal(t, big, body)
	})
}

// readThenClose is a raw TCP backend that reads one whole request (headers
// and a Content-Length body) and closes the connection without a word: the
// backend that took a request and died.
func readThenClose(t *testing.T) (string, *atomic.Int64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var got atomic.Int64
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				r, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				if _, err := io.Copy(io.Discard, r.Body); err == nil {
					got.Add(1)
				}
			})
		}
	})
	return "http://" + ln.Addr().String(), &got
}

// TestPOSTIsNotReplayedAfterTheBackendReadIt is issue 19's fifth item: a
// small POST (buffered, so it could be resent) whose backend read it whole
// and died must not be sent to another backend — both would have processed
// it. A GET in the same spot is retried, as before.
func TestPOSTIsNotReplayedAfterTheBackendReadIt(t *testing.T) {
	for _, method := range []string{http.MethodPost, http.MethodPatch, http.MethodGet} {
		t.Run(method, func(t *testing.T) {
			dead, got := readThenClose(t)
			ok, okHits := answering(t, http.StatusOK, "ok")
			p := startProxy(t, Options{Retries: twoRetries}, scheduler.RR, dead, ok.URL)
			req, err := http.NewRequest(method, p.url+"/order", strings.NewReader(`{"qty":1}`))
			require.NoError(t, err)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			require.EqualValues(t, 1, got.Load(), "the first backend read the request")
			if method == http.MethodGet {
				require.Equal(t, http.StatusOK, resp.StatusCode, "an idempotent request is retried")
				require.EqualValues(t, 1, okHits.Load())
				return
			}
			require.Equal(t, http.StatusBadGateway, resp.StatusCode)
			require.Zero(t, okHits.Load(), "never sent to a second backend")
			require.EqualValues(t, 1, p.backend(dead).Counters().Failures)
		})
	}
}

// refused returns the URL of a port nothing listens on.
func refused(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	u := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())
	return u
}

// TestRefusedIsAlwaysRetried is issue 19's sixth item: a connection refused
// proves the backend never got the request, so it goes to another backend
// whatever the method, retries.max and the retry budget — here max 0 and a
// budget of nothing (no share, no floor), with 16 clients at once.
func TestRefusedIsAlwaysRetried(t *testing.T) {
	ok1, hits1 := answering(t, http.StatusOK, "ok1")
	ok2, hits2 := answering(t, http.StatusOK, "ok2")
	dead := refused(t)
	p := startProxy(t, Options{Retries: RetryOptions{Max: 0, BudgetPercent: 0, BufferBodyBytes: 64 << 10}},
		scheduler.RR, dead, ok1.URL, ok2.URL)

	const clients, each = 16, 30
	var wg sync.WaitGroup
	var bad atomic.Int64
	for c := range clients {
		wg.Go(func() {
			for i := range each {
				method, body := http.MethodGet, io.Reader(nil)
				if (c+i)%4 == 0 {
					method, body = http.MethodPost, strings.NewReader("n="+strconv.Itoa(i))
				}
				req, _ := http.NewRequest(method, p.url+"/", body)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					bad.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					bad.Add(1)
				}
			}
		})
	}
	wg.Wait()
	require.Zero(t, bad.Load(), "every request answered by a live backend")
	require.EqualValues(t, clients*each, hits1.Load()+hits2.Load(), "each reached exactly one live backend")
	require.Positive(t, testutil.ToFloat64(p.h.metrics.retries), "the refused tries were sent elsewhere")
	require.Positive(t, p.backend(dead).Counters().Failures, "and counted against the dead backend")
}

// TestNothingWrittenMeansUndelivered checks the signal a non-idempotent
// request's resend rests on: the connection net/http gave the request, and
// whether any byte went out on it since.
func TestNothingWrittenMeansUndelivered(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() { _, _ = io.Copy(io.Discard, b) }()
	cc := &countingConn{Conn: a}
	_, err := cc.Write([]byte("earlier request"))
	require.NoError(t, err)

	var nilTrace *sendTrace
	require.False(t, nilTrace.nothingWritten(), "no trace: not known, so no")
	s := &sendTrace{}
	require.False(t, s.nothingWritten(), "no connection seen: no")
	s.gotConn(httptrace.GotConnInfo{Conn: cc, Reused: true})
	require.True(t, s.nothingWritten(), "a reused connection, nothing of this request on it yet")
	_, err = cc.Write([]byte("P"))
	require.NoError(t, err)
	require.False(t, s.nothingWritten(), "one byte out: the backend may have it")

	s.gotConn(httptrace.GotConnInfo{Conn: tlsLike{cc}})
	require.True(t, s.nothingWritten(), "under TLS the socket's count is used")
	s.gotConn(httptrace.GotConnInfo{Conn: b})
	require.False(t, s.nothingWritten(), "a connection that does not count: no")
}

type tlsLike struct{ *countingConn }

func (c tlsLike) NetConn() net.Conn { return c.countingConn }

// TestBufferedPOSTGoesWholeToTheNextBackendWhenRefused: the resend that a
// refused connection allows carries the whole buffered body.
func TestBufferedPOSTGoesWholeToTheNextBackendWhenRefused(t *testing.T) {
	body := strings.Repeat("0123456789", 300)
	var got atomic.Value
	ok := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.Store(string(b))
	}))
	t.Cleanup(ok.Close)
	p := startProxy(t, Options{Retries: twoRetries}, scheduler.RR, refused(t), ok.URL)
	resp, err := http.Post(p.url+"/", "text/plain", strings.NewReader(body))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, body, got.Load())
	require.Equal(t, 2.0, p.lines(t)[0]["attempts"])
}
