package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
)

// countingConn is an upstream connection that counts the bytes written to
// it, the way net/http's own persistConn does (nwrite): a request that
// failed with nothing written on its connection cannot have reached the
// backend, and may be sent to another one whatever its method.
type countingConn struct {
	net.Conn
	written atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(int64(n))
	return n, err
}

// ReadFrom keeps the connection's own ReadFrom (splice, sendfile) in use.
func (c *countingConn) ReadFrom(r io.Reader) (int64, error) {
	n, err := io.Copy(c.Conn, r)
	c.written.Add(n)
	return n, err
}

// CloseWrite half-closes an upgraded connection (ReverseProxy's copier
// uses it when one side of a WebSocket is done).
func (c *countingConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return fmt.Errorf("CloseWrite: %w", http.ErrNotSupported)
}

// sendTrace learns, through httptrace, which connection a request was given
// and how many bytes that connection had written by then.
type sendTrace struct {
	conn  *countingConn
	start int64
}

func (s *sendTrace) gotConn(info httptrace.GotConnInfo) {
	s.conn, s.start = nil, 0
	c := info.Conn
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok { // TLS: the count is of the socket underneath
		c = tc.NetConn()
	}
	if cc, ok := c.(*countingConn); ok {
		s.conn, s.start = cc, cc.written.Load()
	}
}

// nothingWritten reports whether the request was given a connection and
// not one byte was written to it since. An HTTP/2 connection carries other
// streams too, whose bytes make this answer no (the safe side). nil, or no
// connection seen, answers no.
func (s *sendTrace) nothingWritten() bool {
	return s != nil && s.conn != nil && s.conn.written.Load() == s.start
}
