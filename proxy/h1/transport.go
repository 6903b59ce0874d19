// Package h1 is lbd's HTTP/1.1 upstream client: an http.RoundTripper for
// one backend, which owns that backend's pool of keep-alive connections.
//
// net/http's Transport gives every connection a read-loop and a write-loop
// goroutine and hands each request to them and back over channels: two
// goroutine hand-offs, and their wake-ups, per request. Here RoundTrip takes
// an idle connection (or dials one), writes the request and reads the
// response head on the calling goroutine; the caller reads the body, and
// the connection goes back to the pool when the body reaches its end. A
// request body that is not already in memory (streamed from the client, of
// unknown or large size) is written by a goroutine of its own while the
// response is read, since the backend may answer before it has read it all
// (full duplex); nothing else starts a goroutine. A context that ends
// interrupts a blocked read or write through context.AfterFunc, which
// closes the connection.
//
// The semantics are those httputil.ReverseProxy expects of a Transport:
// Content-Length, chunked and close-delimited bodies both ways, response
// trailers in Response.Trailer once the body hit EOF (announced keys
// present, nil, from the start), 1xx responses passed to httptrace's
// Got1xxResponse, no body for HEAD, 1xx, 204 and 304, "Connection: close",
// and 101 Switching Protocols with an io.ReadWriteCloser body over the raw
// connection. A connection is reused only when the response body was read
// to its end, the request body was written whole, neither side asked to
// close, and the backend sent nothing beyond the response.
//
// Errors: ErrNotSent marks a failure before any byte of the request was
// written (the backend cannot have seen it: safe to send elsewhere), a
// *ProtocolError a malformed or oversized response, ErrResponseHeaderTimeout
// a backend too slow to answer. A context's end is reported as its error.
//
// Who talks to it: proxy's upstream table builds one Transport per backend
// and closes it when the proxy stops; proxy's retry transport calls
// RoundTrip and tests errors.Is(err, ErrNotSent).
package h1

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Options configure a Transport. Zero values take the defaults.
type Options struct {
	DialTimeout           time.Duration // TCP connect, and TLS handshake (default 2s)
	ResponseHeaderTimeout time.Duration // from the request written to the response head; 0: none
	IdleTimeout           time.Duration // an idle connection is closed after this (default 90s)
	KeepAlive             time.Duration // TCP keep-alive probe interval (default 30s)
	// MaxIdle bounds the idle connections kept (default 512). Cap, when set
	// and positive, bounds them too: it is the backend's concurrency cap,
	// read whenever a connection goes idle, since no more than that many
	// can be busy at once.
	MaxIdle int
	Cap     func() int64
	// TLS configures https backends (cloned; ServerName defaults to the
	// URL's host). nil uses the system roots.
	TLS *tls.Config
	Limits
	// Dial replaces net.Dialer (tests); it must honour ctx.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Transport is the HTTP/1.1 client of one backend: scheme and host:port
// are fixed at New. It is safe for concurrent use.
type Transport struct {
	o      Options
	host   string // the URL host requests must carry
	addr   string // what is dialed
	tlsCfg *tls.Config
	pool   pool
}

// New returns the transport for the backend at target (http or https;
// only scheme and host are used).
func New(target *url.URL, o Options) (*Transport, error) {
	if o.DialTimeout <= 0 {
		o.DialTimeout = 2 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 90 * time.Second
	}
	if o.KeepAlive == 0 {
		o.KeepAlive = 30 * time.Second
	}
	if o.MaxIdle <= 0 {
		o.MaxIdle = 512
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if o.MaxHeaders <= 0 {
		o.MaxHeaders = DefaultMaxHeaders
	}
	if o.Dial == nil {
		d := &net.Dialer{Timeout: o.DialTimeout, KeepAlive: o.KeepAlive}
		o.Dial = d.DialContext
	}
	if target == nil || target.Host == "" {
		return nil, errors.New("h1: backend URL without a host")
	}
	t := &Transport{o: o, host: target.Host}
	port := target.Port()
	switch target.Scheme {
	case "http":
		if port == "" {
			port = "80"
		}
	case "https":
		if port == "" {
			port = "443"
		}
		t.tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
		if o.TLS != nil {
			t.tlsCfg = o.TLS.Clone()
		}
		if t.tlsCfg.ServerName == "" {
			t.tlsCfg.ServerName = target.Hostname()
		}
		t.tlsCfg.NextProtos = []string{"http/1.1"}
	default:
		return nil, fmt.Errorf("h1: backend URL scheme %q: want http or https", target.Scheme)
	}
	t.addr = net.JoinHostPort(target.Hostname(), port)
	t.pool.init(t)
	return t, nil
}

// RoundTrip sends one request and returns the response with its head read
// and its body streaming. The caller must read the body to EOF and close
// it for the connection to be reused. RoundTrip closes the request body,
// possibly after it returns (a streamed body is written while the
// response is read).
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.check(req); err != nil {
		closeBody(req)
		return nil, notSent(err)
	}
	ctx := req.Context()
	for try := 0; ; try++ {
		if err := ctx.Err(); err != nil {
			closeBody(req)
			return nil, notSent(err)
		}
		c, err := t.pool.get(ctx)
		if err != nil {
			closeBody(req)
			return nil, notSent(err)
		}
		resp, rerr := c.roundTrip(req)
		if rerr == nil {
			return resp, nil
		}
		if try == 0 && c.reused && rerr.stale && ctx.Err() == nil {
			// A kept-alive connection the backend had already closed: net/http
			// sends such a request again on a new connection, and so do we,
			// when doing so cannot repeat anything the backend acted on.
			if next, ok := rewind(req, rerr); ok {
				req = next
				continue
			}
		}
		if !rerr.bodyOwned {
			closeBody(req)
		}
		return nil, rerr.err
	}
}

// check refuses what cannot be sent to this backend.
func (t *Transport) check(req *http.Request) error {
	switch {
	case req.URL == nil:
		return errors.New("h1: request without a URL")
	case req.URL.Host != t.host:
		return fmt.Errorf("h1: request for %q sent to the transport of %q", req.URL.Host, t.host)
	case t.tlsCfg == nil && req.URL.Scheme != "http", t.tlsCfg != nil && req.URL.Scheme != "https":
		return fmt.Errorf("h1: request scheme %q on a transport for %s", req.URL.Scheme, t.scheme())
	case req.Header == nil:
		return errors.New("h1: request without a header")
	}
	return nil
}

func (t *Transport) scheme() string {
	if t.tlsCfg != nil {
		return "https"
	}
	return "http"
}

// CloseIdleConnections closes the connections now idle; busy ones are kept
// and go back to the pool when their response ends.
func (t *Transport) CloseIdleConnections() { t.pool.closeIdle(false) }

// Close closes the idle connections and makes every busy one close when
// its response ends: the transport's backend is gone.
func (t *Transport) Close() { t.pool.closeIdle(true) }

// Idle returns the number of idle connections, for tests and metrics.
func (t *Transport) Idle() int { return t.pool.idleCount() }

// rewind returns the request to send again after a stale connection, or
// false when its body cannot be produced again or the backend may have
// acted on it.
func rewind(req *http.Request, e *rtError) (*http.Request, bool) {
	if !e.nothingWritten && !replayable(req) {
		return nil, false
	}
	if !e.bodyRead || req.Body == nil || req.Body == http.NoBody {
		return req, true
	}
	if req.GetBody == nil {
		return nil, false
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, false
	}
	r2 := *req
	r2.Body = body
	return &r2, true
}

// replayable is net/http's rule for sending a request again after the
// backend closed a kept-alive connection under it: an idempotent method
// (or an Idempotency-Key), and a body that is absent or can be produced
// again.
func replayable(r *http.Request) bool {
	if r.Body != nil && r.Body != http.NoBody && r.GetBody == nil {
		return false
	}
	switch r.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, k1 := r.Header["Idempotency-Key"]
	_, k2 := r.Header["X-Idempotency-Key"]
	return k1 || k2
}

func closeBody(r *http.Request) {
	if r.Body != nil {
		_ = r.Body.Close()
	}
}
