package h1

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestKeepAliveReusesOneConnection(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Path", r.URL.RequestURI())
		fmt.Fprint(w, "hello")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	tr := newTransport(t, srv.URL, Options{})
	for i := range 5 {
		resp, body, err := roundTrip(t, tr, get(t, srv.URL, fmt.Sprintf("/p/%d?q=a%%20b", i)))
		require.NoError(t, err)
		require.Equal(t, 200, resp.StatusCode)
		require.Equal(t, "200 OK", resp.Status)
		require.Equal(t, "HTTP/1.1", resp.Proto)
		require.Equal(t, "hello", body)
		require.Equal(t, int64(5), resp.ContentLength)
		require.Equal(t, fmt.Sprintf("/p/%d?q=a%%20b", i), resp.Header.Get("X-Path"))
	}
	require.Equal(t, int32(1), conns.Load())
	require.Equal(t, 1, tr.Idle())
}

func TestRequestHeadIsWhatNetHTTPWouldSend(t *testing.T) {
	got := make(chan *http.Request, 1)
	srv, tr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		got <- r
	}, Options{})
	r, err := http.NewRequest(http.MethodPost, srv.URL+"/x", strings.NewReader("abc"))
	require.NoError(t, err)
	r.Host = "client.example"
	r.Header.Set("User-Agent", "")
	r.Header.Add("X-Multi", "1")
	r.Header.Add("X-Multi", "2")
	resp, _, err := roundTrip(t, tr, r)
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode)
	in := <-got
	require.Equal(t, "client.example", in.Host)
	require.Empty(t, in.Header.Values("User-Agent"), "an empty User-Agent means none")
	require.Equal(t, []string{"1", "2"}, in.Header.Values("X-Multi"))
	require.Equal(t, int64(3), in.ContentLength)
	b, _ := io.ReadAll(in.Body)
	require.Equal(t, "abc", string(b))

	r, _ = http.NewRequest(http.MethodDelete, srv.URL+"/y", nil)
	_, _, err = roundTrip(t, tr, r)
	require.NoError(t, err)
	in = <-got
	require.Equal(t, "Go-http-client/1.1", in.Header.Get("User-Agent"))
	require.Equal(t, []string{"0"}, in.Header.Values("Content-Length"), "net/http sends Content-Length: 0 for bodiless DELETE")
}

func TestInvalidRequestsAreNotSent(t *testing.T) {
	srv, tr := backend(t, func(w http.ResponseWriter, r *http.Request) {}, Options{})
	cases := map[string]func(r *http.Request){
		"header value": func(r *http.Request) { r.Header["X-Bad"] = []string{"a\r\nInjected: 1"} },
		"header name":  func(r *http.Request) { r.Header["Bad Name"] = []string{"x"} },
		"method":       func(r *http.Request) { r.Method = "GE T" },
		"host":         func(r *http.Request) { r.Host = "a b" },
		"query":        func(r *http.Request) { r.URL.RawQuery = "a=1 HTTP/1.1\r\nX: y" },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			r := get(t, srv.URL, "/")
			mutate(r)
			_, err := tr.RoundTrip(r)
			require.ErrorIs(t, err, ErrNotSent)
		})
	}
	_, body, err := roundTrip(t, tr, get(t, srv.URL, "/"))
	require.NoError(t, err, "the connection used by a refused request is still good")
	require.Empty(t, body)
}

func TestWrongTargetIsRefused(t *testing.T) {
	srv, tr := backend(t, func(w http.ResponseWriter, r *http.Request) {}, Options{})
	r := get(t, strings.Replace(srv.URL, "127.0.0.1", "localhost", 1), "/")
	_, err := tr.RoundTrip(r)
	require.ErrorIs(t, err, ErrNotSent)
	require.ErrorContains(t, err, "sent to the transport of")
}

func TestDialFailureIsNotSent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	tr := newTransport(t, "http://"+addr, Options{})
	_, err = tr.RoundTrip(get(t, "http://"+addr, "/"))
	require.ErrorIs(t, err, ErrNotSent)
	var op *net.OpError
	require.ErrorAs(t, err, &op)
	require.Equal(t, "dial", op.Op)
}

func TestChunkedResponseWithTrailers(t *testing.T) {
	srv, tr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "Grpc-Status, X-Sum")
		w.WriteHeader(200)
		for i := range 3 {
			fmt.Fprintf(w, "part%d;", i)
			w.(http.Flusher).Flush()
		}
		w.Header().Set("Grpc-Status", "0")
		w.Header().Set("X-Sum", "abc")
		w.Header().Set(http.TrailerPrefix+"X-Late", "unannounced")
	}, Options{})
	resp, err := tr.RoundTrip(get(t, srv.URL, "/"))
	require.NoError(t, err)
	require.Equal(t, int64(-1), resp.ContentLength)
	require.Equal(t, []string{"chunked"}, resp.TransferEncoding)
	require.Empty(t, resp.Header.Values("Trailer"), "the announcement moves to Response.Trailer")
	require.Equal(t, http.Header{"Grpc-Status": nil, "X-Sum": nil}, resp.Trailer, "announced keys, values to come")
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, "part0;part1;part2;", string(b))
	require.Equal(t, http.Header{"Grpc-Status": {"0"}, "X-Sum": {"abc"}, "X-Late": {"unannounced"}}, resp.Trailer)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, 1, tr.Idle(), "a chunked body read to its end leaves the connection reusable")
}

func TestBodilessResponses(t *testing.T) {
	srv, tr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(204)
		case "/304":
			w.WriteHeader(304)
		default:
			w.Header().Set("Content-Length", "1234")
			w.WriteHeader(200)
		}
	}, Options{})
	for _, c := range []struct {
		method, path string
		length       int64
	}{{"HEAD", "/", 1234}, {"GET", "/204", 0}, {"GET", "/304", 0}} {
		r, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
		resp, err := tr.RoundTrip(r)
		require.NoError(t, err)
		require.Equal(t, http.NoBody, resp.Body, "%s %s", c.method, c.path)
		require.Equal(t, c.length, resp.ContentLength)
		require.Equal(t, 1, tr.Idle(), "back in the pool at once")
	}
}

func TestConnectionCloseAndCloseDelimitedBodies(t *testing.T) {
	s := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		r, err := readRequest(br)
		if err != nil {
			return
		}
		switch r.URL.Path {
		case "/close":
			io.WriteString(c, lines("HTTP/1.1 200 OK", "Connection: close", "Content-Length: 2", "", "ok"))
		case "/eof":
			io.WriteString(c, lines("HTTP/1.1 200 OK", "", "until the end"))
		case "/http10":
			io.WriteString(c, lines("HTTP/1.0 200 OK", "Content-Length: 2", "", "10"))
		}
		// and the connection closes
	})
	tr := newTransport(t, s.URL(), Options{})
	for path, want := range map[string]string{"/close": "ok", "/eof": "until the end", "/http10": "10"} {
		resp, body, err := roundTrip(t, tr, get(t, s.URL(), path))
		require.NoError(t, err, path)
		require.Equal(t, want, body)
		require.True(t, resp.Close, path)
		require.Equal(t, 0, tr.Idle(), "%s: never reused", path)
	}
	require.Equal(t, 3, s.accepted())
}

func TestInformationalResponsesReachTheTrace(t *testing.T) {
	srv, tr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.WriteHeader(http.StatusContinue)
		fmt.Fprint(w, "final")
	}, Options{})
	var got []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		got = append(got, fmt.Sprintf("%d %s", code, h.Get("Link")))
		return nil
	}}
	r := get(t, srv.URL, "/")
	r = r.WithContext(httptrace.WithClientTrace(r.Context(), trace))
	resp, body, err := roundTrip(t, tr, r)
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "final", body)
	require.Equal(t, []string{"103 </style.css>; rel=preload", "100 "}, got)
}

func TestBackendClosingAnIdleConnectionIsNoFailure(t *testing.T) {
	// A backend whose keep-alive ends after each response, without saying so.
	// The next request waits until it has closed: what is tested is that a
	// connection closed while idle is noticed at reuse, not the race of a
	// close still on its way (which no client can see coming).
	closed := make(chan struct{}, 3)
	s := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := readRequest(br); err != nil {
			return
		}
		io.WriteString(c, lines("HTTP/1.1 200 OK", "Content-Length: 2", "", "ok"))
		c.Close()
		closed <- struct{}{}
	})
	tr := newTransport(t, s.URL(), Options{})
	for i := range 3 {
		r, _ := http.NewRequest(http.MethodPost, s.URL()+"/", strings.NewReader("body"))
		_, body, err := roundTrip(t, tr, r)
		require.NoError(t, err, "request %d: the closed idle connection is noticed, even for a POST", i)
		require.Equal(t, "ok", body)
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("request %d: the backend did not close", i)
		}
	}
	require.Equal(t, 3, s.accepted())
}

func TestTLSBackend(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "tls %v %s", r.TLS != nil, r.Proto)
	}))
	t.Cleanup(srv.Close)
	pool := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	tr := newTransport(t, srv.URL, Options{TLS: &tls.Config{RootCAs: pool, ServerName: "example.com"}})
	for range 2 {
		resp, body, err := roundTrip(t, tr, get(t, srv.URL, "/"))
		require.NoError(t, err)
		require.Equal(t, "tls true HTTP/1.1", body)
		require.NotNil(t, resp.TLS)
		require.Equal(t, "http/1.1", resp.TLS.NegotiatedProtocol)
	}
	require.Equal(t, 1, tr.Idle())

	untrusting := newTransport(t, srv.URL, Options{})
	_, err := untrusting.RoundTrip(get(t, srv.URL, "/"))
	require.ErrorIs(t, err, ErrNotSent, "a failed handshake sent nothing")
	var verr *tls.CertificateVerificationError
	require.ErrorAs(t, err, &verr, "the cause is kept")
}

func TestIdleConnectionsAgeOutAndPoolSizeFollowsTheCap(t *testing.T) {
	srv, _ := backend(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "x") }, Options{})
	var limit atomic.Int64
	limit.Store(1)
	tr := newTransport(t, srv.URL, Options{Cap: limit.Load, IdleTimeout: time.Minute})
	// Two responses open at once need two connections; the cap keeps one.
	resp1, err := tr.RoundTrip(get(t, srv.URL, "/"))
	require.NoError(t, err)
	resp2, err := tr.RoundTrip(get(t, srv.URL, "/"))
	require.NoError(t, err)
	for _, resp := range []*http.Response{resp1, resp2} {
		_, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		resp.Body.Close()
	}
	require.Equal(t, 1, tr.Idle())

	limit.Store(0) // no cap: MaxIdle rules
	resp1, _ = tr.RoundTrip(get(t, srv.URL, "/"))
	resp2, _ = tr.RoundTrip(get(t, srv.URL, "/"))
	io.ReadAll(resp1.Body)
	io.ReadAll(resp2.Body)
	require.Equal(t, 2, tr.Idle())

	// The sweep closes what has been idle for IdleTimeout, oldest first.
	tr.pool.mu.Lock()
	tr.pool.idle[0].idleAt = time.Now().Add(-2 * time.Minute)
	tr.pool.mu.Unlock()
	tr.pool.sweepIdle()
	require.Equal(t, 1, tr.Idle())
	tr.pool.mu.Lock()
	tr.pool.idle[0].idleAt = time.Now().Add(-2 * time.Minute)
	tr.pool.mu.Unlock()
	tr.pool.sweepIdle()
	require.Equal(t, 0, tr.Idle())
	tr.pool.mu.Lock()
	require.False(t, tr.pool.armed, "no timer runs while nothing is idle")
	tr.pool.mu.Unlock()
}
