package proxy

import (
	"net"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ConnGuard is the data plane's gate on client connections, shared by
// every data listener lbd runs (a reload that replaces the server keeps
// it, so connections still open on the old listener count):
//
//   - admission.max_connections: beyond the cap a new connection is
//     accepted and closed at once (RST), as HAProxy's maxconn protects
//     the process, so that idle connections cannot take every file
//     descriptor lbd needs for backends, probes and the admin listener;
//   - timeouts.client_stall for writes: before each write the connection's
//     write deadline moves to now + client_stall, so a write the client
//     does not take in that time fails, whoever makes it (a response, the
//     last flush after the handler, an HTTP/2 frame, a WebSocket message).
//     The deadline moves at most once per client_stall/16, so the cost is
//     a clock read per write, and a stall is cut after 15/16 to 16/16 of
//     client_stall.
//
// Its settings are atomics that Set replaces while connections run.
type ConnGuard struct {
	limit   atomic.Int64 // 0: no cap
	stall   atomic.Int64 // nanoseconds; 0: never
	open    atomic.Int64
	refused atomic.Uint64
}

// NewConnGuard returns a guard and registers lbd_connections_open,
// lbd_connections_limit and lbd_connections_refused_total with reg (nil
// registers nowhere).
func NewConnGuard(reg prometheus.Registerer) *ConnGuard {
	g := &ConnGuard{}
	if reg != nil {
		reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "lbd_connections_open", Help: "Client connections open on the data listener.",
			}, func() float64 { return float64(g.open.Load()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "lbd_connections_limit", Help: "Client connections allowed at once (admission.max_connections, capped by the file descriptor limit); 0 means none.",
			}, func() float64 { return float64(g.limit.Load()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "lbd_connections_refused_total", Help: "Client connections closed at accept because admission.max_connections were open.",
			}, func() float64 { return float64(g.refused.Load()) }),
		)
	}
	return g
}

// Set changes the cap on open connections (0: none) and client_stall
// (0: never); connections already open keep running under the new ones.
func (g *ConnGuard) Set(maxConns int, stall time.Duration) {
	g.limit.Store(int64(max(maxConns, 0)))
	g.stall.Store(int64(max(stall, 0)))
}

// Limit returns the cap on open connections (0: none).
func (g *ConnGuard) Limit() int64 { return g.limit.Load() }

// Open returns the connections open now.
func (g *ConnGuard) Open() int64 { return g.open.Load() }

// Refused returns the connections refused so far.
func (g *ConnGuard) Refused() uint64 { return g.refused.Load() }

// Listener wraps ln: its connections are counted and guarded.
func (g *ConnGuard) Listener(ln net.Listener) net.Listener { return &guardListener{Listener: ln, g: g} }

type guardListener struct {
	net.Listener
	g *ConnGuard
}

// Accept returns the next connection under the cap. An accept error is
// returned as it is: net/http's server backs off on temporary ones
// (EMFILE, ENFILE) from 5 ms up to 1 s instead of spinning.
func (l *guardListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		n := l.g.open.Add(1)
		if limit := l.g.limit.Load(); limit > 0 && n > limit {
			l.g.open.Add(-1)
			l.g.refused.Add(1)
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // a reset: no FIN_WAIT or TIME_WAIT left behind for a refused flood
			}
			_ = c.Close()
			continue
		}
		return &guardedConn{Conn: c, g: l.g}, nil
	}
}

// guardedConn is one counted client connection.
type guardedConn struct {
	net.Conn
	g        *ConnGuard
	extended atomic.Int64 // UnixNano when the write deadline last moved; 0: not by us
	closed   atomic.Bool
}

func (c *guardedConn) Write(p []byte) (int, error) {
	if stall := time.Duration(c.g.stall.Load()); stall > 0 {
		now := time.Now()
		if last := c.extended.Load(); last == 0 || now.UnixNano()-last > int64(stall/16) {
			c.extended.Store(now.UnixNano())
			_ = c.Conn.SetWriteDeadline(now.Add(stall))
		}
	} else if c.extended.Swap(0) != 0 { // client_stall was turned off: drop the deadline we set
		_ = c.Conn.SetWriteDeadline(time.Time{})
	}
	return c.Conn.Write(p)
}

// SetWriteDeadline and SetDeadline are the server's own (the TLS handshake
// timeout sets and clears one): the next write sets ours again.
func (c *guardedConn) SetWriteDeadline(t time.Time) error {
	c.extended.Store(0)
	return c.Conn.SetWriteDeadline(t)
}

func (c *guardedConn) SetDeadline(t time.Time) error {
	c.extended.Store(0)
	return c.Conn.SetDeadline(t)
}

// CloseWrite lets net/http end an HTTP/1 connection gracefully after an
// error answer (it half-closes, then waits briefly for the client).
func (c *guardedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *guardedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.g.open.Add(-1)
	}
	return c.Conn.Close()
}
