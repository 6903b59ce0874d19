package h1

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkRoundTrip is one GET at a time over one kept-alive connection to
// a raw loopback backend, through this transport and through net/http's
// (HTTP/1 only, as proxy/upstream.go used it): the transport alone,
// without the proxy around it.
//
//	go test -run '^$' -bench RoundTrip -benchmem -count 6 ./proxy/h1/
func BenchmarkRoundTrip(b *testing.B) {
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 64\r\nContent-Type: text/plain\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\nX-Backend: b\r\n\r\n" +
		string(make([]byte, 64)))
	s := startRaw(b, func(c net.Conn, br *bufio.Reader) {
		for {
			if _, err := readRequest(br); err != nil {
				return
			}
			if _, err := c.Write(resp); err != nil {
				return
			}
		}
	})
	ours := newTransport(b, s.URL(), Options{ResponseHeaderTimeout: 30 * time.Second})
	std := &http.Transport{Protocols: new(http.Protocols), ResponseHeaderTimeout: 30 * time.Second, DisableCompression: true}
	std.Protocols.SetHTTP1(true)
	b.Cleanup(std.CloseIdleConnections)
	for name, rt := range map[string]http.RoundTripper{"h1": ours, "net-http": std} {
		b.Run("transport="+name, func(b *testing.B) {
			req := get(b, s.URL(), "/bench")
			buf := make([]byte, 4<<10)
			b.ReportAllocs()
			for b.Loop() {
				resp, err := rt.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.CopyBuffer(io.Discard, onlyReader{resp.Body}, buf); err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
		})
	}
}

type onlyReader struct{ io.Reader }

// BenchmarkIdlePeek is the system call idleOK makes on a connection's first
// reuse and after idleCheckAfter: what skipping it on a busy connection saves.
func BenchmarkIdlePeek(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			_, _ = io.Copy(io.Discard, c)
		}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(b, err)
	defer nc.Close()
	c := &conn{}
	c.rc, _ = nc.(syscall.Conn).SyscallConn()
	c.peekFn = c.peek
	for b.Loop() {
		c.peeked = false
		if !c.idleOK(0) {
			b.Fatal("an idle connection reads as closed")
		}
	}
}

// BenchmarkReadDeadline is setting and clearing a read deadline, which
// deadline.go avoids doing on every request.
func BenchmarkReadDeadline(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			_, _ = io.Copy(io.Discard, c)
		}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(b, err)
	defer nc.Close()
	for b.Loop() {
		nc.SetReadDeadline(time.Now().Add(30 * time.Second))
		nc.SetReadDeadline(time.Time{})
	}
}
