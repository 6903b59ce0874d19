package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// What net/http does by itself with a request carrying both Content-Length
// and Transfer-Encoding (RFC 9112 6.1), and why lbd must close the
// connection itself: the server reads the body as chunked, hides the
// Content-Length from the handler, and serves the next request on the
// connection. If Go starts closing such connections, this test says so.
func TestNetHTTPKeepsTheConnectionAfterContentLengthWithTransferEncoding(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	var sawLength []bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		paths = append(paths, r.URL.Path)
		sawLength = append(sawLength, r.Header.Get("Content-Length") != "")
		mu.Unlock()
	}))
	defer srv.Close()
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"+
		"0\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	br := bufio.NewReader(conn)
	for range 2 {
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		require.False(t, resp.Close)
		resp.Body.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{"/first", "/second"}, paths, "the request after it is served")
	require.Equal(t, []bool{false, false}, sawLength, "the handler cannot see that both were sent")
}

func TestRequestID(t *testing.T) {
	cases := []struct {
		values []string
		kept   bool
	}{
		{[]string{"abc"}, true},
		{[]string{strings.Repeat("a", 128)}, true},
		{[]string{strings.Repeat("a", 129)}, false},
		{[]string{"a b"}, false},
		{[]string{"a\x00b"}, false},
		{[]string{"a\x7fb"}, false},
		{[]string{""}, false},
		{[]string{"a", "b"}, false},
		{nil, false},
	}
	for _, c := range cases {
		h := http.Header{}
		if c.values != nil {
			h["X-Request-Id"] = c.values
		}
		id := requestID(h)
		if c.kept {
			require.Equal(t, c.values[0], id)
		} else {
			require.Len(t, id, 20, "%q: a fresh xid", c.values)
		}
	}
}

func TestHeaderCountStopsPastTheLimit(t *testing.T) {
	h := http.Header{"A": {"1", "2", "3"}, "B": {"1"}}
	require.Equal(t, 4, headerCount(h, 10))
	require.Greater(t, headerCount(h, 2), 2)
}

func TestViaEntry(t *testing.T) {
	v := newVia("cq1")
	for _, c := range []struct {
		major, minor int
		prior        []string
		want         []string
	}{
		{1, 1, nil, []string{"1.1 lbd-cq1"}},
		{1, 0, nil, []string{"1.0 lbd-cq1"}},
		{2, 0, []string{"1.1 edge"}, []string{"1.1 edge", "2 lbd-cq1"}},
	} {
		r := &http.Request{ProtoMajor: c.major, ProtoMinor: c.minor}
		out := http.Header{}
		if c.prior != nil {
			out["Via"] = c.prior
		}
		v.add(out, r)
		require.Equal(t, c.want, out["Via"])
	}
	shared := http.Header{}
	v.add(shared, &http.Request{ProtoMajor: 1, ProtoMinor: 1})
	shared.Add("Via", "1.1 next")
	require.Equal(t, []string{"1.1 lbd-cq1"}, v.http11, "an append elsewhere never writes into the shared entry")
}
