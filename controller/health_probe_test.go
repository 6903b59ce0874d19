package controller

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/lbd/lbd/backendactor"
)

// probeServer answers path with status and records what it saw.
type probeServer struct {
	status         atomic.Int32
	path, proto    atomic.Pointer[string]
	agent          atomic.Pointer[string]
	conns, handled atomic.Int32
}

func (p *probeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.handled.Add(1)
	path, proto, agent := r.URL.Path, r.Proto, r.UserAgent()
	p.path.Store(&path)
	p.proto.Store(&proto)
	p.agent.Store(&agent)
	if path == "/hang" {
		<-r.Context().Done()
		return
	}
	w.WriteHeader(int(p.status.Load()))
}

func startProbeServer(t *testing.T, kind string) (*httptest.Server, *probeServer) {
	t.Helper()
	ps := &probeServer{}
	ps.status.Store(200)
	srv := httptest.NewUnstartedServer(ps)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused certificate of one case is expected
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			ps.conns.Add(1)
		}
	}
	switch kind {
	case "h2c":
		srv.Config.Protocols = new(http.Protocols)
		srv.Config.Protocols.SetUnencryptedHTTP2(true)
		srv.Start()
	case "tls":
		srv.EnableHTTP2 = true
		srv.StartTLS()
	default:
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv, ps
}

func handleFor(t *testing.T, url, protocol string) *backendactor.Handle {
	t.Helper()
	return handleWithTLS(t, url, protocol, nil)
}

func handleWithTLS(t *testing.T, url, protocol string, tc *tls.Config) *backendactor.Handle {
	t.Helper()
	h := backendactor.New(nil, backendactor.Config{URL: url, Protocol: protocol, TLS: tc, Logger: quietLog})
	t.Cleanup(h.Stop)
	return h
}

// noLeaks checks, after every other cleanup of t has run, that the test
// left no goroutine behind (connections, transports, actors).
func noLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

func probeOnce(p *HTTPProber, h *backendactor.Handle, timeout time.Duration) ProbeResult {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return p.Probe(ctx, h)
}

func TestHTTPProberOnLoopback(t *testing.T) {
	noLeaks(t)
	srv, ps := startProbeServer(t, "http1")
	h := handleFor(t, srv.URL, "http1")

	p := NewHTTPProber(HTTPProbeConfig{Path: "/ready"})
	defer p.CloseIdleConnections()
	r := probeOnce(p, h, time.Second)
	require.Equal(t, ProbeResult{Result: ProbeSuccess, Detail: "GET /ready answered 200"}, r)
	require.Equal(t, "/ready", *ps.path.Load(), "the configured path")
	require.Equal(t, "lbd-health-check", *ps.agent.Load())

	ps.status.Store(503)
	r = probeOnce(p, h, time.Second)
	require.Equal(t, ProbeResult{Result: ProbeBadStatus, Detail: "GET /ready answered 503"}, r)
	require.False(t, r.OK())

	ps.status.Store(204)
	p204 := NewHTTPProber(HTTPProbeConfig{Path: "/ready", ExpectedStatus: 204})
	require.True(t, probeOnce(p204, h, time.Second).OK(), "health.expected_status")
	require.Equal(t, ProbeBadStatus, probeOnce(p, h, time.Second).Result, "204 is not the default's 200")
	ps.status.Store(200)
	require.Equal(t, "GET /ready answered 200, want 204", probeOnce(p204, h, time.Second).Detail)

	before := ps.conns.Load()
	for range 3 {
		probeOnce(p, h, time.Second)
	}
	require.EqualValues(t, 3, ps.conns.Load()-before, "each probe opens its own connection")

	hang := NewHTTPProber(HTTPProbeConfig{Path: "/hang"})
	r = probeOnce(hang, h, 100*time.Millisecond)
	require.Equal(t, ProbeTimeout, r.Result)
	require.Regexp(t, `^GET /hang: no answer within \d+ms$`, r.Detail)
}

func TestHTTPProberConnectionRefused(t *testing.T) {
	noLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	url := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())
	r := probeOnce(NewHTTPProber(HTTPProbeConfig{}), handleFor(t, url, "http1"), time.Second)
	require.Equal(t, ProbeError, r.Result)
	require.Equal(t, "GET /healthz: connect: connection refused", r.Detail)
}

func TestHTTPProberSpeaksTheBackendsProtocol(t *testing.T) {
	noLeaks(t)
	t.Run("h2c", func(t *testing.T) {
		srv, ps := startProbeServer(t, "h2c")
		r := probeOnce(NewHTTPProber(HTTPProbeConfig{}), handleFor(t, srv.URL, "h2c"), time.Second)
		require.True(t, r.OK(), r.Detail)
		require.Equal(t, "HTTP/2.0", *ps.proto.Load())
	})
	t.Run("h2 with its own trust", func(t *testing.T) {
		srv, ps := startProbeServer(t, "tls")
		url := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
		roots := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs

		r := probeOnce(NewHTTPProber(HTTPProbeConfig{}), handleFor(t, url, "h2"), time.Second)
		require.Equal(t, ProbeError, r.Result, "the test CA is not among the system roots")
		require.Contains(t, r.Detail, "certificate")

		h := handleWithTLS(t, url, "h2", &tls.Config{RootCAs: roots, ServerName: "example.com"})
		r = probeOnce(NewHTTPProber(HTTPProbeConfig{}), h, time.Second)
		require.True(t, r.OK(), r.Detail)
		require.Equal(t, "HTTP/2.0", *ps.proto.Load())
	})
}

// Item 10 of issue 19: with lbd out of file descriptors, a probe fails with
// EMFILE; that is lbd's trouble, not the backend's. The descriptors run
// out for real here: the soft limit is lowered, files opened until the
// kernel refuses, then everything is given back.
func TestHTTPProberOutOfDescriptorsIsALocalError(t *testing.T) {
	srv, _ := startProbeServer(t, "http1")
	h := handleFor(t, srv.URL, "http1")
	var lim syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim))
	low := lim
	low.Cur = 256
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low))
	var held []*os.File
	defer func() {
		for _, f := range held {
			f.Close()
		}
		require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim))
	}()
	for len(held) < 512 {
		f, err := os.Open(os.DevNull)
		if err != nil {
			require.ErrorIs(t, err, syscall.EMFILE)
			break
		}
		held = append(held, f)
	}
	r := probeOnce(NewHTTPProber(HTTPProbeConfig{}), h, time.Second)
	require.Equal(t, ProbeLocalError, r.Result, r.Detail)
	require.Contains(t, r.Detail, "out of file descriptors")
}
