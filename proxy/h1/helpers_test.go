package h1

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newTransport returns a transport for rawURL, closed at the end of t.
func newTransport(t testing.TB, rawURL string, o Options) *Transport {
	t.Helper()
	u, err := url.Parse(rawURL)
	require.NoError(t, err)
	tr, err := New(u, o)
	require.NoError(t, err)
	t.Cleanup(tr.Close)
	return tr
}

// backend starts a net/http server on 127.0.0.1:0 and a transport to it.
func backend(t testing.TB, h http.HandlerFunc, o Options) (*httptest.Server, *Transport) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, newTransport(t, srv.URL, o)
}

func get(t testing.TB, srvURL, path string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(http.MethodGet, srvURL+path, nil)
	require.NoError(t, err)
	return r
}

// rawServer is a backend that speaks whatever its script writes, for
// answers net/http's server would never give. Each connection runs script;
// the server and every connection end with the test.
type rawServer struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
	n     int // connections accepted
}

func startRaw(t testing.TB, script func(c net.Conn, br *bufio.Reader)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &rawServer{ln: ln}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.n++
			s.mu.Unlock()
			s.wg.Go(func() {
				defer c.Close()
				script(c, bufio.NewReader(c))
			})
		}
	})
	t.Cleanup(s.close)
	return s
}

func (s *rawServer) URL() string { return "http://" + s.ln.Addr().String() }

func (s *rawServer) accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func (s *rawServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// readRequest reads one request head (and a Content-Length body) from br.
func readRequest(br *bufio.Reader) (*http.Request, error) {
	r, err := http.ReadRequest(br)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, r.Body)
	return r, err
}

// roundTrip sends r and reads the whole response; the body is returned as
// a string with the read error.
func roundTrip(t testing.TB, tr *Transport, r *http.Request) (*http.Response, string, error) {
	t.Helper()
	resp, err := tr.RoundTrip(r)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

// within fails the test when f has not returned in d: the "never a hang"
// guard for the malformed-backend tests.
func within(t testing.TB, d time.Duration, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("still running after %v", d)
	}
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func lines(s ...string) string { return strings.Join(s, "\r\n") }
