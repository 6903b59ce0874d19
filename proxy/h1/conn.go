package h1

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// max1xx bounds the informational responses before the final one: each is
// passed on to the client, and a backend that sends them without end must
// not hold the request forever.
const max1xx = 16

// conn is one connection to the backend. Between requests it sits in the
// pool; during one it belongs to the request's goroutine, and to the body
// writer when a streamed request body is being sent.
type conn struct {
	t        *Transport
	raw      net.Conn // the TCP connection: closing it interrupts everything
	nc       net.Conn // raw, or the *tls.Conn over it
	rd       reader
	bw       *bufio.Writer // writes through conn.Write, which counts
	rc       syscall.RawConn
	tlsState *tls.ConnectionState
	idleAt   time.Time
	reused   bool // it served a response before this one

	written atomic.Int64 // bytes the connection accepted, ever
	aborted atomic.Bool  // the request's context ended and closed the connection
	ctx     context.Context
	stop    func() bool // stops the context's AfterFunc; nil when none
	abortFn func()      // c.abort, made once

	peekFn    func(uintptr) bool // c.peek, made once
	peekBuf   [1]byte
	peekAlive bool
	peeked    bool      // checked once already (idleOK)
	deadline  time.Time // the read deadline set, zero for none (deadline.go)

	// The body writer, when one runs (streamed request bodies).
	writing   atomic.Bool
	writeDone chan error
	wmu       sync.Mutex
	headRead  bool  // the response head arrived: no more header deadline
	srcErr    error // the request body failed to read: it outranks what it caused
}

// dial opens a connection, with its TLS handshake for https.
func (t *Transport) dial(ctx context.Context) (*conn, error) {
	raw, err := t.o.Dial(ctx, "tcp", t.addr)
	if err != nil {
		return nil, err
	}
	c := &conn{t: t, raw: raw, nc: raw}
	if t.tlsCfg != nil {
		tc := tls.Client(raw, t.tlsCfg)
		hctx, cancel := context.WithTimeout(ctx, t.o.DialTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			raw.Close()
			return nil, err
		}
		cs := tc.ConnectionState()
		c.tlsState, c.nc = &cs, tc
	} else if sc, ok := raw.(syscall.Conn); ok {
		c.rc, _ = sc.SyscallConn()
	}
	c.rd = reader{br: getReader(c.nc), lim: t.o.Limits}
	c.bw = getWriter(c)
	c.abortFn, c.peekFn = c.abort, c.peek
	return c, nil
}

// Write is what the buffered writer writes through: it counts, so that a
// failure can tell whether any byte of the request left.
func (c *conn) Write(p []byte) (int, error) {
	n, err := c.nc.Write(p)
	c.written.Add(int64(n))
	return n, err
}

// abort runs when the request's context ends: closing the TCP connection
// wakes whatever read or write is blocked on it, on either goroutine.
func (c *conn) abort() {
	c.aborted.Store(true)
	c.raw.Close()
}

// stopAbort detaches the connection from the request's context. false
// means the context ended first and the connection is being closed.
func (c *conn) stopAbort() bool {
	if c.stop == nil {
		return true
	}
	ok := c.stop()
	c.stop, c.ctx = nil, nil
	return ok
}

// close closes the connection. recycle gives its buffers back, which only
// the goroutine that owns the reader may ask for; the writer's buffer
// stays out of the pool while a body writer may still use it.
func (c *conn) close(recycle bool) {
	c.nc.Close()
	if recycle {
		putReader(c.rd.br)
		c.rd.br = nil
		if !c.writing.Load() {
			putWriter(c.bw)
			c.bw = nil
		}
	}
}

// rtError is a failed exchange, with what RoundTrip needs to decide
// whether to try again on a fresh connection.
type rtError struct {
	err            error
	stale          bool // a kept-alive connection failed before any response byte
	nothingWritten bool
	bodyRead       bool // the request body was (perhaps partly) consumed
	bodyOwned      bool // a body writer has the request body and closes it
}

// roundTrip writes req and reads the response head on this connection.
func (c *conn) roundTrip(req *http.Request) (*http.Response, *rtError) {
	ctx := req.Context()
	if ctx.Done() != nil {
		c.ctx = ctx
		c.stop = context.AfterFunc(ctx, c.abortFn)
	}
	f := framingOf(req)
	w0 := c.written.Load()
	if err := c.writeHead(req, f); err != nil {
		if c.written.Load() != w0 { // a long head was flushed in part
			c.stopAbort()
			c.close(true)
			return nil, &rtError{err: err}
		}
		c.bw.Reset(c)
		c.finish(true)
		return nil, &rtError{err: notSent(err)}
	}
	var werr error
	if f.stream {
		c.clearDeadline() // the body writer sets it once the body is sent
		if werr = c.bw.Flush(); werr == nil {
			c.startBodyWriter(req, f)
		}
	} else {
		if f.hasBody {
			var src bool
			if werr, src = c.copyBody(req, f, false); src {
				c.stopAbort()
				c.close(true)
				return nil, &rtError{err: werr, bodyRead: true}
			}
			closeBody(req)
		}
		if werr == nil {
			werr = c.bw.Flush()
		}
		if werr == nil {
			c.armHeaderTimeout(time.Now())
		}
	}
	nothing := c.written.Load() == w0
	if werr != nil && nothing {
		c.stopAbort()
		c.close(true)
		return nil, &rtError{err: notSent(c.mapErr(werr)), stale: c.reused, nothingWritten: true, bodyRead: f.hasBody}
	}
	// A write that failed part way still lets the backend's answer through
	// (an early 413, say): read it, and never reuse the connection.
	resp, err := c.readResponse(req, f, werr != nil)
	if err != nil {
		c.stopAbort()
		c.close(true)
		return nil, &rtError{err: err, bodyRead: f.hasBody, bodyOwned: f.stream,
			stale: c.reused && errors.Is(err, errNoResponse)}
	}
	return resp, nil
}

// readResponse reads informational responses (passed to httptrace's
// Got1xxResponse) and the final head, and gives the response its body.
func (c *conn) readResponse(req *http.Request, f framing, broken bool) (*http.Response, error) {
	var h head
	var err error
	for n := 0; ; n++ {
		if h, err = c.rd.readHead(); err != nil {
			return nil, c.readErr(err)
		}
		if h.code >= 200 || h.code == http.StatusSwitchingProtocols {
			break
		}
		if n == max1xx {
			return nil, protoErr("sent more than %d informational responses", max1xx)
		}
		if trace := httptrace.ContextClientTrace(req.Context()); trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(h.code, textproto.MIMEHeader(h.header)); err != nil {
				return nil, err
			}
		}
	}
	c.headArrived(f)
	resp := &http.Response{
		Status: h.status, StatusCode: h.code, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: h.minor,
		Header: h.header, Request: req, TLS: c.tlsState,
	}
	if h.minor == 0 {
		resp.Proto = "HTTP/1.0"
	} else {
		resp.ProtoMinor = 1
	}
	if err := c.setBody(resp, req, broken); err != nil {
		return nil, err
	}
	return resp, nil
}

// headArrived ends the response-header deadline of a streamed request,
// which the body writer may have set; for the others setBody decides
// (deadline.go).
func (c *conn) headArrived(f framing) {
	if c.t.o.ResponseHeaderTimeout <= 0 || !f.stream {
		return
	}
	c.wmu.Lock()
	c.headRead = true
	c.wmu.Unlock()
	c.nc.SetReadDeadline(time.Time{})
}

// readErr names what a failed read means: the context's end, the header
// timeout, or what the connection reported.
func (c *conn) readErr(err error) error {
	if src := c.sourceErr(); src != nil {
		return src
	}
	if c.aborted.Load() {
		// net/http cancels a request whose client connection failed in the
		// same read that hands the body writer the client's error (a body
		// cut short): give the writer a moment, its error is the truer one.
		if c.writeDone != nil {
			c.writerDone()
		}
		c.wmu.Lock()
		src := c.srcErr
		c.wmu.Unlock()
		if src != nil {
			return src
		}
		return c.ctxErr()
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return ErrResponseHeaderTimeout
	}
	return err
}

// mapErr is readErr for errors after the head.
func (c *conn) mapErr(err error) error {
	if src := c.sourceErr(); src != nil {
		return src
	}
	if c.aborted.Load() {
		return c.ctxErr()
	}
	return err
}

func (c *conn) ctxErr() error {
	if c.ctx != nil && c.ctx.Err() != nil {
		return c.ctx.Err()
	}
	return context.Canceled
}

func (c *conn) sourceErr() error {
	if !c.writing.Load() && c.writeDone == nil {
		return nil
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.srcErr
}

// finish ends a response whose body was read to its end (or that had
// none): the connection goes back to the pool when nothing forbids it.
func (c *conn) finish(reuse bool) {
	if !c.stopAbort() {
		reuse = false
	}
	if c.writeDone != nil && !c.writerDone() {
		reuse = false
	}
	// Bytes beyond the response are never read as the next response.
	if reuse && c.rd.br.Buffered() > 0 {
		reuse = false
	}
	if reuse && c.t.pool.put(c) {
		return
	}
	c.close(true)
}

// abandon ends a response that was not read to its end: the connection
// cannot be reused. It may run on another goroutine than a Read.
func (c *conn) abandon() {
	c.stopAbort()
	c.raw.Close() // no TLS close_notify: the exchange is cut short anyway
}
