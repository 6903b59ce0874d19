package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/backendactor"
)

// failingReader yields data, then err.
type failingReader struct {
	data string
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.data != "" {
		n := copy(p, f.data)
		f.data = f.data[n:]
		return n, nil
	}
	return 0, f.err
}

func (f *failingReader) Close() error { return nil }

func TestClientBodyFailuresAreClassified(t *testing.T) {
	cases := []struct {
		name   string
		err    error
		status int
		reason string
	}{
		{"malformed chunked", errors.New("invalid byte in chunk length"), http.StatusBadRequest, RejectBadBody},
		{"cut short", io.ErrUnexpectedEOF, http.StatusBadRequest, RejectBadBody},
		{"over max_body_bytes", &http.MaxBytesError{Limit: 10}, http.StatusRequestEntityTooLarge, RejectBodyTooLarge},
		{"read deadline", &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, http.StatusRequestTimeout, RejectClientStall},
		{"reset", &net.OpError{Op: "read", Err: syscall.ECONNRESET}, statusClientClosed, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := &reqState{ResponseWriter: httptest.NewRecorder(), start: time.Now(), status: http.StatusOK}
			r := httptest.NewRequest(http.MethodPost, "/", nil)
			r.Body = &failingReader{data: "abc", err: c.err}
			st.wrapBody(r, 0)
			_, err := io.ReadAll(r.Body)
			var cbe *clientBodyError
			require.ErrorAs(t, err, &cbe, "the body's errors are recognisable")
			require.ErrorIs(t, err, c.err, "and keep their cause")
			ctx := context.WithValue(context.Background(), ctxKey{}, st)
			require.Equal(t, backendactor.Canceled, classifyErr(ctx, fmt.Errorf("write error: %w", errors.New("broken pipe"))),
				"whatever the transport made of it, the backend is not blamed")
			require.True(t, st.answerBodyFailure(r))
			require.Equal(t, c.status, st.status)
			require.Equal(t, c.reason, st.rejected)
		})
	}
}

func TestBackendErrorsStillCount(t *testing.T) {
	st := &reqState{ResponseWriter: httptest.NewRecorder(), start: time.Now()}
	ctx := context.WithValue(context.Background(), ctxKey{}, st)
	require.Equal(t, backendactor.GatewayError, classifyErr(ctx, syscall.ECONNREFUSED))
	require.Equal(t, backendactor.Canceled, classifyErr(ctx, &net.OpError{Op: "dial", Err: syscall.EMFILE}),
		"lbd out of descriptors says nothing about the backend")
	require.False(t, st.answerBodyFailure(httptest.NewRequest(http.MethodGet, "/", nil)))
}

// ticketLog records what a request told its admission ticket.
type ticketLog struct {
	done, left, uploads int
	latency             time.Duration
}

func (l *ticketLog) Done(d time.Duration, _ bool) { l.done++; l.latency = d }
func (l *ticketLog) Leave()                       { l.left++ }
func (l *ticketLog) Upload(started bool) {
	if started {
		l.uploads++
	} else {
		l.uploads--
	}
}

func TestBodyFailureGivesTheAdaptiveLimitNoSample(t *testing.T) {
	st := &reqState{ResponseWriter: httptest.NewRecorder(), start: time.Now()}
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.Body = &failingReader{err: io.ErrUnexpectedEOF}
	st.wrapBody(r, 0)
	_, _ = io.ReadAll(r.Body)
	tl := &ticketLog{}
	st.ticket = tl
	st.leaveAdmission()
	require.Equal(t, ticketLog{left: 1}, *tl)
}

func TestLatencyStartsWhereTheClientIsDone(t *testing.T) {
	ms := time.Millisecond
	cases := []struct {
		name                     string
		admitted, ended, headers time.Duration
		want                     time.Duration
	}{
		{"no body", 0, 0, 30 * ms, 30 * ms},
		{"body read before admission", 50 * ms, 40 * ms, 80 * ms, 30 * ms},
		{"slow upload streamed to the backend", 0, 900 * ms, 930 * ms, 30 * ms},
		{"backend answered before the body ended", 0, 900 * ms, 20 * ms, 20 * ms},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := &reqState{start: time.Now(), admitted: c.admitted, headers: c.headers}
			if c.ended > 0 {
				st.body.ended.Store(int64(c.ended) + 1)
			}
			require.Equal(t, c.want, st.latency())
		})
	}
}

func TestClientBodyKeepsWhatItCarries(t *testing.T) {
	st := &reqState{ResponseWriter: httptest.NewRecorder(), start: time.Now()}
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("hello"))
	st.wrapBody(r, time.Minute)
	b, err := io.ReadAll(r.Body)
	require.NoError(t, err)
	require.Equal(t, "hello", string(b))
	require.NotZero(t, st.body.endedAt())
	require.Nil(t, st.body.failure.Load())
	st.stopWatches()
}

// slowReader yields its data after a delay: a client whose body comes
// after its headers.
type slowReader struct {
	delay time.Duration
	data  string
	sent  bool
}

func (s *slowReader) Read(p []byte) (int, error) {
	if s.sent {
		return 0, io.EOF
	}
	time.Sleep(s.delay)
	s.sent = true
	return copy(p, s.data), nil
}

func (s *slowReader) Close() error { return nil }

func TestPrefetchDoesNotWaitForALateBody(t *testing.T) {
	h := &Handler{}
	st := &reqState{ResponseWriter: httptest.NewRecorder(), start: time.Now()}
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.TransferEncoding = []string{"chunked"}
	r.Body = &slowReader{delay: 300 * time.Millisecond, data: "late but whole"}
	start := time.Now()
	require.True(t, h.prefetchChunked(r, st))
	require.Less(t, time.Since(start), 250*time.Millisecond, "forwarded without waiting for the body")
	b, err := io.ReadAll(r.Body)
	require.NoError(t, err)
	require.Equal(t, "late but whole", string(b), "and the body arrives whole, in order")
}

// deadlineRecorder is a ResponseWriter whose connection takes read
// deadlines, as net/http's HTTP/1 one does.
type deadlineRecorder struct {
	*httptest.ResponseRecorder
	set time.Time
}

func (d *deadlineRecorder) SetReadDeadline(t time.Time) error { d.set = t; return nil }

// When the read deadline fires, net/http cancels the request before the
// body's reader may have seen the timeout: the transport then fails with
// the context's error first. The request is still a stalled upload (408),
// not a client that left (499, which would leave net/http to answer the
// waiting client with an empty 200).
func TestStallSeenFirstByTheContextIsStill408(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &reqState{ResponseWriter: &deadlineRecorder{ResponseRecorder: httptest.NewRecorder()}, start: time.Now(), status: http.StatusOK}
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("0123456789"))
		st.wrapBody(r, 300*time.Millisecond)
		buf := make([]byte, 4)
		_, err := r.Body.Read(buf) // arms the deadline
		require.NoError(t, err)
		require.False(t, st.answerBodyFailure(r), "within client_stall: nothing to answer")
		time.Sleep(300 * time.Millisecond) // the fake clock: the deadline passes
		require.True(t, st.answerBodyFailure(r))
		require.Equal(t, http.StatusRequestTimeout, st.status)
		require.Equal(t, RejectClientStall, st.rejected)
	})
}
