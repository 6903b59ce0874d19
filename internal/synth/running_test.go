package synth

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// client returns an HTTP client whose idle connections are closed when the
// test ends, so goleak sees no transport goroutines.
func client(t *testing.T, h2c bool) *http.Client {
	tr := &http.Transport{}
	if h2c {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// withArrived installs the test hook told of each traffic request.
func withArrived(f func(*http.Request)) Option { return func(s *Server) { s.arrived = f } }

func start(t *testing.T, k Knobs, opts ...Option) *Running {
	r, err := Start("127.0.0.1:0", k, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, r.Close()) })
	return r
}

func TestStartServesHTTP1AndH2C(t *testing.T) {
	r := start(t, Knobs{Name: "b1", Size: 100})
	require.True(t, strings.HasPrefix(r.URL(), "http://127.0.0.1:"))
	for _, tc := range []struct {
		name  string
		h2c   bool
		proto string
	}{{"http1", false, "HTTP/1.1"}, {"h2c", true, "HTTP/2.0"}} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := client(t, tc.h2c).Get(r.URL() + "/hello")
			require.NoError(t, err)
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Len(t, b, 100)
			require.Equal(t, "b1", resp.Header.Get("X-Backend"))
			require.Equal(t, tc.proto, resp.Header.Get("X-Seen-Proto"))
		})
	}
	require.EqualValues(t, 2, r.Server.Requests())
}

func TestSSEFlushesEachEvent(t *testing.T) {
	r := start(t, Knobs{Name: "sse"})
	// The second event is a minute away: reading the first proves it was
	// flushed on its own rather than buffered with the rest.
	resp, err := client(t, false).Get(r.URL() + "/sse?n=3&every=1m")
	require.NoError(t, err)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	br := bufio.NewReader(resp.Body)
	var event []string
	for {
		line, err := br.ReadString('\n')
		require.NoError(t, err)
		if line == "\n" {
			break
		}
		event = append(event, strings.TrimSpace(line))
	}
	require.Equal(t, []string{"id: 1", `data: {"n":1,"backend":"sse"}`}, event)
	require.NoError(t, resp.Body.Close()) // the client leaves; the handler must notice
}

func TestSSEStreamsAllEvents(t *testing.T) {
	r := start(t, Knobs{})
	resp, err := client(t, false).Get(r.URL() + "/sse?n=4&every=1ms")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, 4, strings.Count(string(b), "data: "))

	bad, err := client(t, false).Get(r.URL() + "/sse?n=-1")
	require.NoError(t, err)
	bad.Body.Close()
	require.Equal(t, http.StatusBadRequest, bad.StatusCode)
}

func TestEchoStreams(t *testing.T) {
	for _, h2c := range []bool{false, true} {
		t.Run(map[bool]string{false: "http1", true: "h2c"}[h2c], func(t *testing.T) {
			r := start(t, Knobs{})
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			pr, pw := io.Pipe()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL()+"/echo", pr)
			require.NoError(t, err)
			go func() {
				// Each chunk is written only after the previous one came back,
				// so a buffering echo would stall until the deadline.
				_, _ = pw.Write([]byte("ping"))
			}()
			resp, err := client(t, h2c).Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			buf := make([]byte, 4)
			_, err = io.ReadFull(resp.Body, buf)
			require.NoError(t, err)
			require.Equal(t, "ping", string(buf))
			go func() { _, _ = pw.Write([]byte("pong")); _ = pw.Close() }()
			rest, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Equal(t, "pong", string(rest))
		})
	}
}

func TestHangReleasedOnClose(t *testing.T) {
	in := make(chan struct{})
	r, err := Start("", Knobs{HangRate: 1}, withArrived(func(*http.Request) { close(in) }))
	require.NoError(t, err)

	c := client(t, false)
	got := make(chan error, 1)
	go func() {
		resp, err := c.Get(r.URL() + "/")
		if err == nil {
			resp.Body.Close()
		}
		got <- err
	}()
	<-in // the request is hanging in the handler
	require.EqualValues(t, 1, r.Server.Inflight())
	require.NoError(t, r.Close())
	<-got // released: an error or a 503, either way it returned
	require.Zero(t, r.Server.Inflight())
	require.NoError(t, r.Close(), "second Close is a no-op")
	c.CloseIdleConnections()
	goleak.VerifyNone(t)
}

func TestKnobsChangeLive(t *testing.T) {
	r := start(t, Knobs{Name: "b"})
	c := client(t, false)
	req, err := http.NewRequest(http.MethodPut, r.URL()+"/_knobs", strings.NewReader(`{"error_rate":1,"error_status":502}`))
	require.NoError(t, err)
	resp, err := c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	resp, err = c.Get(r.URL() + "/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadGateway, resp.StatusCode)
}
