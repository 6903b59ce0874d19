package h1

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestChunkedRequestBodyStreamsWhileTheResponseIsRead(t *testing.T) {
	// An echo that answers before the upload ends: the request body must
	// flow while the response is read (full duplex), or this deadlocks.
	srv, tr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).EnableFullDuplex()
		w.Header().Set("Trailer", "X-Got")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		n, _ := io.Copy(flushWriter{w}, r.Body)
		w.Header().Set("X-Got", fmt.Sprint(n))
		w.Header().Set("X-Req-Trailer", r.Trailer.Get("X-Up"))
	}, Options{})
	pr, pw := io.Pipe()
	r, err := http.NewRequest(http.MethodPost, srv.URL+"/echo", pr)
	require.NoError(t, err)
	r.ContentLength = -1
	r.Trailer = http.Header{"X-Up": nil}
	resp, err := tr.RoundTrip(r)
	require.NoError(t, err, "the head comes back before the body is sent")
	buf := make([]byte, 5)
	for i := range 3 {
		msg := fmt.Sprintf("ping%d", i)
		_, err := pw.Write([]byte(msg))
		require.NoError(t, err)
		_, err = io.ReadFull(resp.Body, buf)
		require.NoError(t, err)
		require.Equal(t, msg, string(buf), "each piece comes back before the next goes")
	}
	r.Trailer.Set("X-Up", "done")
	require.NoError(t, pw.Close())
	rest, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Empty(t, rest)
	require.Equal(t, "15", resp.Trailer.Get("X-Got"))
	require.NoError(t, resp.Body.Close())
}

type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	f.w.(http.Flusher).Flush()
	return n, err
}

func TestLargeBodiesStreamBothWays(t *testing.T) {
	// 8 MiB up and echoed down at once: more than both sockets' buffers,
	// so a transport that wrote the body before reading would deadlock.
	const size = 8 << 20
	srv, tr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).EnableFullDuplex()
		_, _ = io.Copy(w, r.Body)
	}, Options{})
	for _, known := range []bool{true, false} {
		t.Run(fmt.Sprintf("content-length=%v", known), func(t *testing.T) {
			r, err := http.NewRequest(http.MethodPut, srv.URL+"/echo", io.LimitReader(zeros{}, size))
			require.NoError(t, err)
			r.ContentLength = -1
			if known {
				r.ContentLength = size
			}
			var n int64
			within(t, 30*time.Second, func() {
				resp, rerr := tr.RoundTrip(r)
				if rerr != nil {
					err = rerr
					return
				}
				n, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			})
			require.NoError(t, err)
			require.Equal(t, int64(size), n)
		})
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestUpgradeGivesTheRawConnection(t *testing.T) {
	s := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := readRequest(br); err != nil {
			return
		}
		// The first bytes of the new protocol come in the same write as the 101.
		io.WriteString(c, lines("HTTP/1.1 101 Switching Protocols", "Connection: Upgrade", "Upgrade: echo", "", "hi:"))
		_, _ = io.Copy(c, br)
	})
	tr := newTransport(t, s.URL(), Options{})
	r := get(t, s.URL(), "/ws")
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Upgrade", "echo")
	resp, err := tr.RoundTrip(r)
	require.NoError(t, err)
	require.Equal(t, 101, resp.StatusCode)
	rwc, ok := resp.Body.(io.ReadWriteCloser)
	require.True(t, ok, "ReverseProxy needs a writable body for a 101")
	_, err = io.WriteString(rwc, "echo me")
	require.NoError(t, err)
	buf := make([]byte, len("hi:echo me"))
	_, err = io.ReadFull(rwc, buf)
	require.NoError(t, err)
	require.Equal(t, "hi:echo me", string(buf))
	require.NoError(t, rwc.Close())
	require.Equal(t, 0, tr.Idle(), "an upgraded connection never returns to the pool")
}

func TestCancelInterruptsABlockedRead(t *testing.T) {
	release := make(chan struct{})
	srv, tr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/body" {
			w.Header().Set("Content-Length", "10")
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}, Options{})
	t.Cleanup(func() { close(release) })

	t.Run("waiting for the head", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		r := get(t, srv.URL, "/head").WithContext(ctx)
		errc := make(chan error, 1)
		go func() { _, err := tr.RoundTrip(r); errc <- err }()
		cancel()
		err := <-errc
		require.ErrorIs(t, err, context.Canceled)
	})
	t.Run("reading the body", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		resp, err := tr.RoundTrip(get(t, srv.URL, "/body").WithContext(ctx))
		require.NoError(t, err)
		errc := make(chan error, 1)
		go func() { _, err := io.ReadAll(resp.Body); errc <- err }()
		cancel()
		require.ErrorIs(t, <-errc, context.Canceled)
		resp.Body.Close()
	})
	t.Run("deadline", func(t *testing.T) {
		_, err := tr.RoundTrip(get(t, srv.URL, "/head").WithContext(ctxTimeout(t, 50*time.Millisecond)))
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})
	require.Equal(t, 0, tr.Idle())
}

func TestResponseHeaderTimeout(t *testing.T) {
	release := make(chan struct{})
	srv, tr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
	}, Options{ResponseHeaderTimeout: 50 * time.Millisecond})
	defer close(release)
	_, err := tr.RoundTrip(get(t, srv.URL, "/slow"))
	require.ErrorIs(t, err, ErrResponseHeaderTimeout)
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	require.True(t, ne.Timeout())
	_, _, err = roundTrip(t, tr, get(t, srv.URL, "/fast"))
	require.NoError(t, err, "a later request is not hit by the old deadline")
}

// TestResponseHeaderTimeoutAcrossReuse: the deadline a fast response left
// on its connection (deadline.go) neither cuts a slow body short, nor fails
// the next request when it expired while the connection was idle, nor lets
// a slow head through.
func TestResponseHeaderTimeoutAcrossReuse(t *testing.T) {
	const timeout = 40 * time.Millisecond
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow-head":
			time.Sleep(4 * timeout)
		case "/slow-body":
			w.Header().Set("Content-Length", "4")
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			time.Sleep(4 * timeout) // a body may take its time
		}
		fmt.Fprint(w, "done")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	tr := newTransport(t, srv.URL, Options{ResponseHeaderTimeout: timeout})

	_, body, err := roundTrip(t, tr, get(t, srv.URL, "/fast"))
	require.NoError(t, err)
	require.Equal(t, "done", body)
	_, body, err = roundTrip(t, tr, get(t, srv.URL, "/slow-body"))
	require.NoError(t, err, "the deadline was gone before the body was waited for")
	require.Equal(t, "done", body)
	_, _, err = roundTrip(t, tr, get(t, srv.URL, "/fast"))
	require.NoError(t, err)
	time.Sleep(idleCheckAfter + timeout) // the deadline left expires while idle, and the reuse peeks
	_, body, err = roundTrip(t, tr, get(t, srv.URL, "/fast"))
	require.NoError(t, err)
	require.Equal(t, "done", body)
	require.Equal(t, int32(1), conns.Load(), "one connection all along")

	start := time.Now()
	_, err = tr.RoundTrip(get(t, srv.URL, "/slow-head"))
	require.ErrorIs(t, err, ErrResponseHeaderTimeout, "on a reused connection too")
	require.GreaterOrEqual(t, time.Since(start), timeout, "never before its time")
}
