package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbd/lbd/backendactor"
	"github.com/lbd/lbd/proxy/h1"
)

// TransportOptions tune the upstream transports: each backend's own
// HTTP/1.1 transport and connection pool (proxy/h1), and the shared HTTP/2
// ones (net/http).
type TransportOptions struct {
	DialTimeout           time.Duration
	ResponseHeaderTimeout time.Duration
	IdleConnTimeout       time.Duration
	MaxIdleConnsPerHost   int // idle connections kept per backend (also bounded by its cap)
}

// HTTP/2 connection health: a connection with no frame for h2PingAfter is
// pinged, and closed when the ping goes unanswered for h2PingTimeout, so a
// backend that vanished without a reset fails its streams in seconds rather
// than at the kernel's TCP timeout.
const (
	h2PingAfter   = 15 * time.Second
	h2PingTimeout = 5 * time.Second
)

// upstream is what the proxy keeps per backend: where to send and how.
type upstream struct {
	target    *url.URL
	rt        http.RoundTripper
	duration  prometheus.Observer
	codeCache statusCodes
	pool      string
	backend   string
	m         *metrics
}

// upstreams caches one upstream per backend handle. Handles live for the
// backend's lifetime, so the cache is keyed by pointer and cleared on close.
type upstreams struct {
	opts  TransportOptions
	m     *metrics
	cache sync.Map // *backendactor.Handle -> *upstream

	mu       sync.Mutex
	byProto  map[string]*multiplexed // the shared HTTP/2 transports
	closeFns []func()
}

func newUpstreams(o TransportOptions, m *metrics) *upstreams {
	if o.DialTimeout <= 0 {
		o.DialTimeout = 2 * time.Second
	}
	if o.IdleConnTimeout <= 0 {
		o.IdleConnTimeout = 90 * time.Second
	}
	if o.MaxIdleConnsPerHost <= 0 {
		o.MaxIdleConnsPerHost = 512
	}
	return &upstreams{opts: o, m: m, byProto: map[string]*multiplexed{}}
}

// get returns h's upstream; pool names h's pool in the metrics labels.
func (u *upstreams) get(h *backendactor.Handle, pool string) *upstream {
	if v, ok := u.cache.Load(h); ok {
		return v.(*upstream)
	}
	target, err := url.Parse(h.URL())
	if err != nil { // URLs are validated before a backend exists; keep the request alive anyway
		target = &url.URL{Scheme: "http", Host: h.URL()}
	}
	up := &upstream{target: target, pool: pool, backend: h.URL(), m: u.m}
	own := u.ownHTTP1(h, target)
	up.rt = u.transport(h.Protocol(), h.URL(), h.TLS(), own)
	up.duration = u.m.duration.WithLabelValues(pool, h.URL())
	v, loaded := u.cache.LoadOrStore(h, up)
	if loaded && own != nil { // another request built it first
		own.Close()
	}
	return v.(*upstream)
}

// ownHTTP1 builds the backend's own HTTP/1.1 transport and connection pool
// (proxy/h1), sized by its concurrency cap: no more connections can be busy
// at once than the backend admits requests.
func (u *upstreams) ownHTTP1(h *backendactor.Handle, target *url.URL) *h1.Transport {
	o := h1.Options{
		DialTimeout: u.opts.DialTimeout, ResponseHeaderTimeout: u.opts.ResponseHeaderTimeout,
		IdleTimeout: u.opts.IdleConnTimeout, MaxIdle: u.opts.MaxIdleConnsPerHost,
		Cap: func() int64 { return h.Snapshot().MaxInflight },
	}
	if tc := h.TLS(); tc != nil { // the backend's own trust settings (its ca_file, server_name)
		o.TLS = tc.Clone()
	}
	t, err := h1.New(target, o)
	if err != nil { // URLs are validated before a backend exists
		return nil
	}
	return t
}

// transport returns the round tripper of a backend: its own HTTP/1.1
// transport (proxy/h1) for http1, and for h2c and h2 the shared HTTP/2
// transport of net/http, with the backend's own HTTP/1.1 transport for
// the upgrades HTTP/2 cannot carry. Backends with their own TLS trust (the
// handle's TLS) get their own HTTP/2 transport, since trust lives in the
// transport.
func (u *upstreams) transport(protocol, backendURL string, ownTLS *tls.Config, own *h1.Transport) http.RoundTripper {
	var h1rt http.RoundTripper = own
	if own == nil {
		h1rt = brokenBackend{backendURL}
	} else {
		u.mu.Lock()
		u.closeFns = append(u.closeFns, own.Close)
		u.mu.Unlock()
	}
	if protocol != "h2c" && protocol != "h2" {
		return h1rt
	}
	key := protocol
	if ownTLS != nil {
		key = protocol + " " + backendURL
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	m, ok := u.byProto[key]
	if !ok {
		h2 := u.newTransport(ownTLS)
		h2.Protocols = new(http.Protocols)
		if protocol == "h2c" {
			h2.Protocols.SetUnencryptedHTTP2(true) // prior knowledge: no Upgrade round trip
		} else {
			h2.Protocols.SetHTTP2(true) // ALPN must settle on h2; an HTTP/1-only backend fails loudly
		}
		h2.HTTP2 = &http.HTTP2Config{SendPingTimeout: h2PingAfter, PingTimeout: h2PingTimeout}
		grpc := h2.Clone()
		grpc.ResponseHeaderTimeout = 0
		m = &multiplexed{h2: h2, grpc: grpc}
		u.byProto[key] = m
		u.closeFns = append(u.closeFns, h2.CloseIdleConnections, grpc.CloseIdleConnections)
	}
	return &multiplexed{h2: m.h2, grpc: m.grpc, h1: h1rt}
}

// brokenBackend answers for a backend whose URL the transport refused,
// which validation prevents: a 502 naming it, rather than a panic.
type brokenBackend struct{ url string }

func (b brokenBackend) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		r.Body.Close()
	}
	return nil, errors.New("backend " + b.url + ": no HTTP/1.1 transport for this URL")
}

func (u *upstreams) newTransport(own *tls.Config) *http.Transport {
	t := &http.Transport{
		Proxy:                 nil, // never route backend traffic through an environment proxy
		DialContext:           countingDialer(&net.Dialer{Timeout: u.opts.DialTimeout, KeepAlive: 30 * time.Second}),
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   u.opts.MaxIdleConnsPerHost,
		IdleConnTimeout:       u.opts.IdleConnTimeout,
		ResponseHeaderTimeout: u.opts.ResponseHeaderTimeout,
		TLSHandshakeTimeout:   u.opts.DialTimeout,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true, // pass bodies through as the backend encoded them
	}
	if own != nil {
		t.TLSClientConfig = own.Clone()
	}
	return t
}

// countingDialer wraps every upstream connection in a countingConn, so that
// a failed request can tell whether any byte of it was written (sendTrace).
func countingDialer(d *net.Dialer) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: c}, nil
	}
}

// multiplexed is the round tripper of an HTTP/2 backend (h2c or h2). Each
// request becomes a stream on a shared connection, so every stream is
// balanced on its own; two kinds of request take another path:
//   - protocol upgrades (WebSocket), which HTTP/2 cannot carry, go over
//     HTTP/1.1 to the same backend;
//   - gRPC calls skip timeouts.response_header: a streaming call may hold
//     its headers back for as long as it likes, and the caller's deadline
//     (grpc-timeout, passed through) is what bounds a call.
type multiplexed struct{ h2, grpc, h1 http.RoundTripper }

func (m *multiplexed) RoundTrip(r *http.Request) (*http.Response, error) {
	switch {
	case upgradeType(r.Header) != "":
		return m.h1.RoundTrip(r)
	case isGRPC(r.Header):
		return m.grpc.RoundTrip(r)
	}
	return m.h2.RoundTrip(r)
}

func (u *upstreams) closeIdle() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, f := range u.closeFns {
		f()
	}
}
