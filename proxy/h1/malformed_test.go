package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestMalformedAnswers puts the transport in front of backends that answer
// wrongly, over real loopback TCP. Each must end in a clear error, at the
// head (the proxy answers 502) or while reading the body (the proxy cuts
// the client's response short), within seconds and without a panic, and
// the connection must never carry another response.
func TestMalformedAnswers(t *testing.T) {
	flood := func(line string) func(c net.Conn) {
		return func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\n")
			for {
				if _, err := io.WriteString(c, line); err != nil {
					return
				}
			}
		}
	}
	say := func(s string) func(c net.Conn) { return func(c net.Conn) { io.WriteString(c, s) } }
	cases := []struct {
		name   string
		answer func(c net.Conn)
		head   string // error from RoundTrip containing this
		body   string // or error from reading the body containing this
		is     error  // and wrapping this, if set
	}{
		{name: "bad status code", answer: say("HTTP/1.1 2x0 OK\r\n\r\n"), head: "malformed status code"},
		{name: "status code below 100", answer: say("HTTP/1.1 099 Odd\r\n\r\n"), head: "malformed status code"},
		{name: "not HTTP/1", answer: say("HTTP/2.0 200 OK\r\n\r\n"), head: "not of HTTP/1.x"},
		{name: "garbage", answer: say("hello there\r\n\r\n"), head: "malformed status line"},
		{name: "control byte in reason", answer: say("HTTP/1.1 200 O\rK\r\n\r\n"), head: "control byte in status line"},
		{name: "closed before answering", answer: func(net.Conn) {}, head: "before any response byte", is: io.EOF},
		{name: "closed in the status line", answer: say("HTTP/1.1 20"), head: "middle of a head", is: io.ErrUnexpectedEOF},
		{name: "closed in the header", answer: say("HTTP/1.1 200 OK\r\nX-A: b\r\n"), head: "middle of a head", is: io.ErrUnexpectedEOF},
		{name: "header flood", answer: flood("X-Flood: 1\r\n"), head: "more than 100 header fields"},
		{name: "endless header line", answer: flood("X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), head: "head of more than 65536 bytes"},
		{name: "obs-fold", answer: say("HTTP/1.1 200 OK\r\nX-A: b\r\n  c\r\n\r\n"), head: "folded header line"},
		{name: "space before colon", answer: say("HTTP/1.1 200 OK\r\nX-A : b\r\n\r\n"), head: "malformed header name"},
		{name: "no colon", answer: say("HTTP/1.1 200 OK\r\nX-A b\r\n\r\n"), head: "malformed header line"},
		{name: "NUL in a value", answer: say("HTTP/1.1 200 OK\r\nX-A: b\x00c\r\n\r\n"), head: "control byte in header line"},
		{name: "CL and TE", answer: say("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), head: "both Transfer-Encoding and Content-Length"},
		{name: "unsupported TE", answer: say("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), head: "unsupported Transfer-Encoding"},
		{name: "two TE fields", answer: say("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"), head: "unsupported Transfer-Encoding"},
		{name: "differing CLs", answer: say("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello"), head: "differing Content-Length"},
		{name: "negative CL", answer: say("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"), head: "bad Content-Length"},
		{name: "huge CL", answer: say("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n"), head: "bad Content-Length"},
		{name: "1xx flood", answer: flood1xx, head: "more than 16 informational responses"},
		{name: "forbidden trailer", answer: say("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Content-Length\r\n\r\n0\r\n\r\n"), head: "forbidden trailer field"},

		{name: "CL longer than the body", answer: say("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"), body: "95 bytes before the end of the body", is: io.ErrUnexpectedEOF},
		{name: "chunk size overflow", answer: say("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\nx"), body: "broken chunked body"},
		{name: "chunk size not hex", answer: say("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nx"), body: "broken chunked body"},
		{name: "chunk without CRLF", answer: say("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX0\r\n\r\n"), body: "broken chunked body"},
		{name: "chunked cut short", answer: say("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nonly"), body: "broken chunked body", is: io.ErrUnexpectedEOF},
		{name: "endless chunk extension", answer: func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;ext=")
			for {
				if _, err := io.WriteString(c, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"); err != nil {
					return
				}
			}
		}, body: "broken chunked body"},
		{name: "trailer flood", answer: func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n")
			for {
				if _, err := io.WriteString(c, "X-T: 1\r\n"); err != nil {
					return
				}
			}
		}, body: "more than 100 header fields"},
		{name: "closed in the trailer", answer: say("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: 1\r\n"), body: "closed the connection in the trailer", is: io.ErrUnexpectedEOF},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := startRaw(t, func(c net.Conn, br *bufio.Reader) {
				if _, err := readRequest(br); err != nil {
					return
				}
				tc.answer(c)
			})
			tr := newTransport(t, s.URL(), Options{})
			var resp *http.Response
			var err, bodyErr error
			within(t, 10*time.Second, func() {
				resp, err = tr.RoundTrip(get(t, s.URL(), "/"))
				if err == nil {
					_, bodyErr = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
			})
			if tc.head != "" {
				require.ErrorContains(t, err, tc.head)
				require.NotErrorIs(t, err, ErrNotSent, "the request was sent")
				if tc.is != nil {
					require.ErrorIs(t, err, tc.is)
				}
			} else {
				require.NoError(t, err)
				require.ErrorContains(t, bodyErr, tc.body)
				if tc.is != nil {
					require.ErrorIs(t, bodyErr, tc.is)
				}
			}
			if tc.name != "closed before answering" {
				var pe *ProtocolError
				require.True(t, errors.As(errors.Join(err, bodyErr), &pe), "a *ProtocolError: %v %v", err, bodyErr)
			}
			require.Equal(t, 0, tr.Idle(), "the connection is not kept")
		})
	}
}

func flood1xx(c net.Conn) {
	for {
		if _, err := io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"); err != nil {
			return
		}
	}
}

// TestNoSmuggledResponse: bytes a backend sends beyond a response are
// never read as the answer to the next request, whether they arrive with
// the response or later, while the connection is idle.
func TestNoSmuggledResponse(t *testing.T) {
	const smuggled = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"
	for _, late := range []bool{false, true} {
		t.Run(fmt.Sprintf("late=%v", late), func(t *testing.T) {
			wrote := make(chan struct{})
			s := startRaw(t, func(c net.Conn, br *bufio.Reader) {
				r, err := readRequest(br)
				if err != nil {
					return
				}
				if r.URL.Path != "/first" {
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhonest")
					return
				}
				first := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
				if !late {
					io.WriteString(c, first+smuggled)
					return
				}
				io.WriteString(c, first)
				// The extra response goes only once a byte comes back from us:
				// after the first body was read, while the connection is idle.
				if _, err := br.Peek(1); err != nil {
					return
				}
				io.WriteString(c, smuggled)
				close(wrote)
				_, _ = io.Copy(io.Discard, br)
			})
			tr := newTransport(t, s.URL(), Options{})
			_, body, err := roundTrip(t, tr, get(t, s.URL(), "/first"))
			require.NoError(t, err)
			require.Equal(t, "ok", body)
			if late {
				require.Equal(t, 1, tr.Idle(), "nothing was extra when the body ended")
				idle := tr.pool.idle[0]
				_, err := idle.nc.Write([]byte("X"))
				require.NoError(t, err)
				<-wrote
			}
			_, body, err = roundTrip(t, tr, get(t, s.URL(), "/second"))
			require.NoError(t, err)
			require.Equal(t, "honest", body, "the answer to the second request is its own")
			require.Equal(t, 2, s.accepted(), "the first connection was dropped")
		})
	}
}

// TestStaleConnectionIsRetriedOnlyWhenSafe covers the path the idle peek
// cannot: a connection it cannot peek at (here a wrapper without a file
// descriptor, as for TLS) that the backend closed while it sat idle.
func TestStaleConnectionIsRetriedOnlyWhenSafe(t *testing.T) {
	s := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := readRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		// then close: a keep-alive the backend did not keep
	})
	d := &net.Dialer{}
	o := Options{Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		return opaque{c}, err
	}}
	tr := newTransport(t, s.URL(), o)
	_, _, err := roundTrip(t, tr, get(t, s.URL(), "/"))
	require.NoError(t, err)
	waitClosed(t, tr)

	_, body, err := roundTrip(t, tr, get(t, s.URL(), "/"))
	require.NoError(t, err, "a GET goes again on a new connection")
	require.Equal(t, "ok", body)
	waitClosed(t, tr)

	r, _ := http.NewRequest(http.MethodPost, s.URL()+"/", strings.NewReader("x"))
	r.GetBody = nil // a body that cannot be produced again
	r.Body = io.NopCloser(strings.NewReader("x"))
	_, _, err = roundTrip(t, tr, r)
	require.Error(t, err, "a POST whose body was sent is not sent twice")
	require.ErrorIs(t, err, errNoResponse)
	require.NotErrorIs(t, err, ErrNotSent)
}

// waitClosed waits until the backend's close of the idle connection has
// reached it (the FIN is readable), without consuming anything.
func waitClosed(t *testing.T, tr *Transport) {
	t.Helper()
	require.Equal(t, 1, tr.Idle())
	c := tr.pool.idle[0]
	_, err := c.rd.br.Peek(1)
	require.ErrorIs(t, err, io.EOF)
}

type opaque struct{ net.Conn } // hides SyscallConn: no idle peek
