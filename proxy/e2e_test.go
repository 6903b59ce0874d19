package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/actor"
	"github.com/lbd/lbd/backendactor"
	"github.com/lbd/lbd/scheduler"
)

// testProxy is the data plane over real loopback backends: a scheduler
// (round robin, so the first try goes to the first backend), the handler
// behind a loopback listener, and its access log.
type testProxy struct {
	url   string
	h     *Handler
	sched *scheduler.Scheduler
	reg   *prometheus.Registry
	log   bytes.Buffer
	al    *AccessLog
}

func startProxy(t *testing.T, o Options, policy string, backends ...string) *testProxy {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	s, err := scheduler.New(scheduler.Config{Policy: policy, Registry: actor.NewRegistry(), Logger: quiet,
		Backend: backendactor.Config{Breaker: backendactor.BreakerConfig{FailureThreshold: 1000, OpenFor: time.Second, HalfOpenProbes: 1}}})
	require.NoError(t, err)
	for _, b := range backends {
		_, err := s.Add(context.Background(), scheduler.Spec{URL: b, Weight: 1, Protocol: "http1", Initial: true})
		require.NoError(t, err)
	}
	p := &testProxy{sched: s, reg: prometheus.NewRegistry()}
	p.al = NewAccessLog(&p.log, 1)
	o.Scheduler, o.Live.AccessLog, o.Registerer, o.Logger = s, p.al, p.reg, quiet
	p.h = New(o)
	srv := httptest.NewServer(p.h)
	p.url = srv.URL
	t.Cleanup(func() {
		srv.Close()
		p.h.Close()
		require.NoError(t, p.al.Close())
		require.NoError(t, s.Stop(context.Background()))
	})
	return p
}

// lines closes the access log and returns its lines.
func (p *testProxy) lines(t *testing.T) []map[string]any {
	require.NoError(t, p.al.Close())
	return parseLines(t, p.log.Bytes())
}

func (p *testProxy) backend(url string) *backendactor.Handle { return p.sched.Lookup(url) }

// h1Options are the end-to-end tests' settings: one retry, bodies buffered
// for it, and a response-header timeout a stuck test does not wait out.
func h1Options() Options {
	return Options{Retries: RetryOptions{Max: 1, BudgetPercent: 100, MinPerSecond: 100, BufferBodyBytes: 64 << 10},
		Transport: TransportOptions{ResponseHeaderTimeout: 5 * time.Second}}
}

// rawBackend answers each request on each connection with answer(path).
func rawBackend(t *testing.T, answer func(c net.Conn, path string) bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					r, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, r.Body)
					if !answer(c, r.URL.Path) {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return "http://" + ln.Addr().String()
}

func TestResponseHeaderComesThroughWhole(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Set-Cookie"] = []string{"a=1", "b=2"}
		h.Set("X-Request-Id", "backend-id")
		h.Set("Connection", "X-Hop")
		h.Set("X-Hop", "hop-by-hop: removed")
		h.Set("Content-Type", "text/plain")
		h.Set("Trailer", "X-Sum")
		fmt.Fprint(w, "body")
		h.Set("X-Sum", "42")
	}))
	t.Cleanup(be.Close)
	p := startProxy(t, h1Options(), scheduler.RR, be.URL)
	req, _ := http.NewRequest(http.MethodGet, p.url+"/", nil)
	req.Header.Set("X-Request-Id", "client-id")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, "body", string(b))
	require.Equal(t, []string{"a=1", "b=2"}, resp.Header.Values("Set-Cookie"))
	require.Equal(t, []string{"client-id", "backend-id"}, resp.Header.Values("X-Request-Id"), "lbd's first, the backend's after, as ReverseProxy's copy has it")
	require.Empty(t, resp.Header.Values("X-Hop"))
	require.Equal(t, "text/plain", resp.Header.Get("Content-Type"))
	require.Equal(t, "42", resp.Trailer.Get("X-Sum"))
}

func TestEventStreamIsFlushedAsItComes(t *testing.T) {
	next := make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Content-Length", "20") // a length: only the type says "flush"
		w.WriteHeader(200)
		fmt.Fprint(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		<-next
		fmt.Fprint(w, "data: 2\n\n")
	}))
	t.Cleanup(be.Close)
	p := startProxy(t, h1Options(), scheduler.RR, be.URL)
	resp, err := http.Get(p.url + "/")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	buf := make([]byte, len("data: one\n\n"))
	_, err = io.ReadFull(resp.Body, buf)
	require.NoError(t, err, "the first event arrives before the second is sent")
	close(next)
	rest, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, "data: 2\n\n", string(rest))
}

// TestMalformedBackendAnswersAre502 puts the whole proxy in front of
// backends that answer wrongly: a broken head is a 502, never a hang or a
// panic; a body that breaks off after the head was read aborts the
// client's response.
func TestMalformedBackendAnswersAre502(t *testing.T) {
	heads := map[string]string{
		"bad status line": "HTTP/1.1 2x0 OK\r\n\r\n",
		"CL and TE":       "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"header flood":    "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-F: 1\r\n", 500) + "\r\n",
		"obs-fold":        "HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\n\r\n",
		"bad chunked TE":  "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
	}
	for name, answer := range heads {
		t.Run(name, func(t *testing.T) {
			be := rawBackend(t, func(c net.Conn, _ string) bool { io.WriteString(c, answer); return false })
			p := startProxy(t, h1Options(), scheduler.RR, be)
			resp, err := http.Get(p.url + "/")
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusBadGateway, resp.StatusCode)
		})
	}
	bodies := map[string]string{
		"CL longer than the body": "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
		"chunk size overflow":     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nfffffffffffffffffff\r\n",
	}
	for name, answer := range bodies {
		t.Run(name, func(t *testing.T) {
			be := rawBackend(t, func(c net.Conn, _ string) bool { io.WriteString(c, answer); return false })
			p := startProxy(t, h1Options(), scheduler.RR, be)
			// ReverseProxy aborts the client's connection: before the head
			// left lbd's buffer (an error at once) or after (a body cut short).
			resp, err := http.Get(p.url + "/")
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				require.ErrorIs(t, err, io.ErrUnexpectedEOF)
			}
			require.Error(t, err, "never a response that looks complete")
		})
	}
}

// TestNoResponseReachesTheWrongClient: a backend that sends a second
// response after the first one's body never has it delivered as the answer
// to a later request.
func TestNoResponseReachesTheWrongClient(t *testing.T) {
	be := rawBackend(t, func(c net.Conn, path string) bool {
		if path == "/first" {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst"+
				"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled")
			return true
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond")
		return true
	})
	p := startProxy(t, h1Options(), scheduler.RR, be)
	for _, path := range []string{"/first", "/second", "/second"} {
		resp, err := http.Get(p.url + path)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, strings.TrimPrefix(path, "/"), string(b))
	}
}

// TestConcurrentResponsesKeepTheirOwnHeaders runs many requests at once
// through one backend's pool: with header maps and value slices reused
// from response to response (moveHeader, h1.ReuseHeader), every client
// must still see exactly its own answer.
func TestConcurrentResponsesKeepTheirOwnHeaders(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("id")
		w.Header().Set("X-Echo", id)
		w.Header()["Set-Cookie"] = []string{"a=" + id, "b=" + id}
		if r.URL.Query().Get("sse") != "" {
			w.Header().Set("Content-Type", "text/event-stream")
		}
		fmt.Fprint(w, id)
	}))
	t.Cleanup(be.Close)
	p := startProxy(t, h1Options(), scheduler.RR, be.URL)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	t.Cleanup(client.CloseIdleConnections)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 150 {
				id := fmt.Sprintf("%d-%d", g, i)
				url := p.url + "/?id=" + id
				if i%5 == 0 {
					url += "&sse=1" // the copying path, interleaved with the moving one
				}
				resp, err := client.Get(url)
				if err != nil {
					errs <- err
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if got := []string{string(b), resp.Header.Get("X-Echo"), strings.Join(resp.Header.Values("Set-Cookie"), ";")}; got[0] != id || got[1] != id || got[2] != "a="+id+";b="+id {
					errs <- fmt.Errorf("request %s got %q", id, got)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}
