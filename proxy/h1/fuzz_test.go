package h1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// FuzzResponse feeds arbitrary backend answers to the transport's
// response reader (head, 1xx, framing, body, chunked coding, trailers) and
// compares the outcome with net/http's own reader. It must never panic or
// read past its limits; where net/http accepts a response, it must read
// the same status, header, body and trailer, or refuse it for one of the
// stricter rules head.go lists.
//
//	go test -run '^$' -fuzz FuzzResponse -fuzztime 60s ./proxy/h1/
func FuzzResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n5\r\nhello\r\n0\r\nX-T: v\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\n\r\n",
		"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\nuntil close",
		"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
		"HTTP/1.1 200 OK\nContent-Length: 2\nConnection: close\n\nok",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\nraw",
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
		"HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\n\r\n",
		"HTTP/1.1 500\r\nSet-Cookie: a\r\nSet-Cookie: b\r\nPragma: no-cache\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n0\r\n\r\n",
		"HTTP/0.0 200 \n\n0",
	} {
		f.Add([]byte(s), false)
	}
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"), true)
	f.Add([]byte("HTTP/1.0 101\n\n"), true)
	f.Fuzz(func(t *testing.T, data []byte, head bool) {
		method := http.MethodGet
		if head {
			method = http.MethodHead
		}
		lim := Limits{MaxHeaderBytes: 4 << 10, MaxHeaders: 20}
		ours, oerr := readOurs(t, data, method, lim)
		theirs, terr := readTheirs(data, method)
		if oerr != nil {
			var pe *ProtocolError
			if !errors.As(oerr, &pe) && !errors.Is(oerr, errNoResponse) {
				t.Fatalf("not a *ProtocolError: %v", oerr)
			}
			if terr == nil && !stricter(oerr) {
				t.Fatalf("net/http reads %q but we say %v", data, oerr)
			}
			return
		}
		if terr != nil {
			t.Fatalf("we read %q (%+v) but net/http says %v", data, ours, terr)
		}
		require.Equal(t, theirs.code, ours.code)
		require.Equal(t, theirs.header, ours.header)
		require.Equal(t, theirs.length, ours.length)
		require.Equal(t, theirs.close, ours.close)
		require.Equal(t, theirs.body, ours.body)
		require.Equal(t, theirs.trailer, ours.trailer)
	})
}

// read is what a reader made of a response, in comparable form.
type read struct {
	code    int
	header  http.Header
	length  int64
	close   bool
	body    string
	trailer http.Header
}

// stricter reports the refusals head.go documents as stricter than
// net/http's.
func stricter(err error) bool {
	for _, s := range []string{
		"folded header line", "malformed header name", "malformed status code", "control byte in status line", "not of HTTP/1.x", "bare LF in the trailer",
		"both Transfer-Encoding and Content-Length", "head of more than", "header fields",
		"informational responses",
	} {
		if strings.Contains(err.Error(), s) {
			return true
		}
	}
	return false
}

func readOurs(t *testing.T, data []byte, method string, lim Limits) (read, error) {
	u, _ := url.Parse("http://backend.test")
	tr, err := New(u, Options{Limits: lim})
	require.NoError(t, err)
	defer tr.Close()
	nc := &scripted{r: bytes.NewReader(data)}
	c := &conn{t: tr, raw: nc, nc: nc, rd: reader{br: bufio.NewReaderSize(nc, 4<<10), lim: tr.o.Limits}}
	c.bw = bufio.NewWriter(c)
	req := &http.Request{Method: method, URL: u, Header: http.Header{}}
	resp, err := c.readResponse(req, framing{}, false)
	if err != nil {
		return read{}, err
	}
	out := read{code: resp.StatusCode, header: resp.Header, length: resp.ContentLength, close: resp.Close}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		resp.Body.Close()
		return out, nil
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return read{}, err
	}
	out.body, out.trailer = string(b), resp.Trailer
	return out, nil
}

func readTheirs(data []byte, method string) (read, error) {
	br := bufio.NewReader(bytes.NewReader(data))
	req := &http.Request{Method: method, Header: http.Header{}}
	var resp *http.Response
	var err error
	for {
		if resp, err = http.ReadResponse(br, req); err != nil {
			return read{}, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	// net/http's client adds Cache-Control for an HTTP/1.0 cache's Pragma;
	// a proxy passes the backend's header on as it came.
	if _, ok := resp.Header["Cache-Control"]; ok && !bytes.Contains(bytes.ToLower(data), []byte("cache-control")) {
		delete(resp.Header, "Cache-Control")
	}
	out := read{code: resp.StatusCode, header: resp.Header, length: resp.ContentLength, close: resp.Close}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return out, nil
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return read{}, err
	}
	out.body, out.trailer = string(b), resp.Trailer
	return out, nil
}

// scripted is a connection that answers with fixed bytes, then EOF.
type scripted struct {
	r *bytes.Reader
	net.Conn
}

func (s *scripted) Read(p []byte) (int, error)       { return s.r.Read(p) }
func (s *scripted) Write(p []byte) (int, error)      { return len(p), nil }
func (s *scripted) Close() error                     { return nil }
func (s *scripted) SetReadDeadline(time.Time) error  { return nil }
func (s *scripted) SetWriteDeadline(time.Time) error { return nil }
func (s *scripted) SetDeadline(time.Time) error      { return nil }
