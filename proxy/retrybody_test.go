package proxy

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// newRecorder is an httptest.ResponseRecorder that keeps the first status.
type recorder struct {
	*httptest.ResponseRecorder
	code int
}

func newRecorder() *recorder { return &recorder{ResponseRecorder: httptest.NewRecorder()} }

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseRecorder.WriteHeader(code)
}

// onlyReader hides bytes.Reader so that http.NewRequest cannot learn the
// length: the body is sent as if chunked.
type onlyReader struct{ io.Reader }

func TestBufferBody(t *testing.T) {
	body := strings.Repeat("x", 100)
	cases := []struct {
		name       string
		body       io.Reader
		limit      int64
		replayable bool
		length     int64
	}{
		{"known length under the limit", strings.NewReader(body), 100, true, 100},
		{"known length over the limit: streamed", strings.NewReader(body), 99, false, 100},
		{"unknown length: streamed, never waited for", onlyReader{strings.NewReader(body)}, 1000, false, -1},
		{"buffering off", strings.NewReader(body), 0, false, 100},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", c.body)
			r.GetBody = nil // as a server request has
			if _, ok := c.body.(onlyReader); ok {
				r.ContentLength = -1
			}
			require.NoError(t, bufferBody(r, c.limit))
			require.Equal(t, c.replayable, r.GetBody != nil, "replayable")
			require.Equal(t, c.replayable, resendable(r))
			require.Equal(t, c.length, r.ContentLength)
			want := body
			got, err := io.ReadAll(r.Body)
			require.NoError(t, err)
			require.Equal(t, want, string(got), "the body arrives whole, buffered or streamed")
			if c.replayable {
				again, err := freshBody(r)
				require.NoError(t, err)
				b, err := io.ReadAll(again)
				require.NoError(t, err)
				require.Equal(t, want, string(b), "and again for a retry")
			}
		})
	}
}

func TestBufferBodyPassesReadErrors(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.Body = io.NopCloser(bytes.NewReader(make([]byte, 10)))
	r.ContentLength = 20 // the client hung up before sending all it announced
	require.ErrorIs(t, bufferBody(r, 64<<10), io.ErrUnexpectedEOF)
}

// TestRetryRules: a try the backend may have acted on is resent only for
// an idempotent method whose body can be produced again; a try it cannot
// have received only needs the body.
func TestRetryRules(t *testing.T) {
	for _, c := range []struct {
		method                 string
		body                   bool
		resendable, idempotent bool
	}{
		{http.MethodGet, false, true, true}, {http.MethodHead, false, true, true}, {http.MethodOptions, false, true, true},
		{http.MethodDelete, false, true, true}, {http.MethodPut, false, true, true},
		{http.MethodPost, false, true, false}, {http.MethodPatch, false, true, false},
		{http.MethodPut, true, false, true}, // idempotent, but the streamed body cannot be sent again
		{http.MethodPost, true, false, false},
	} {
		var body io.Reader
		if c.body {
			body = onlyReader{strings.NewReader("data")}
		}
		r := httptest.NewRequest(c.method, "/", body)
		require.Equal(t, c.resendable, resendable(r), "%s body=%v", c.method, c.body)
		require.Equal(t, c.idempotent, idempotent(r), "%s", c.method)
	}
}
