package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbd/lbd/backendactor"
)

// TransportOptions tune the shared upstream transports.
type TransportOptions struct {
	DialTimeout           time.Duration
	ResponseHeaderTimeout time.Duration
	IdleConnTimeout       time.Duration
	MaxIdleConnsPerHost   int
	// TLS for https backends (h2, or http1 over TLS): extra trust and server
	// name, by normalised backend URL. Backends not listed use the system roots.
	TLS map[string]UpstreamTLS
}

// UpstreamTLS is one https backend's trust settings. The caller reads the
// CA file (and reports a bad one at start), so the proxy never touches files.
type UpstreamTLS struct {
	RootCAs    *x509.CertPool // nil: the system roots
	ServerName string         // "": the URL's host
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
	byProto  map[string]http.RoundTripper
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
	return &upstreams{opts: o, m: m, byProto: map[string]http.RoundTripper{}}
}

func (u *upstreams) get(h *backendactor.Handle) *upstream {
	if v, ok := u.cache.Load(h); ok {
		return v.(*upstream)
	}
	target, err := url.Parse(h.URL())
	if err != nil { // URLs are validated before a backend exists; keep the request alive anyway
		target = &url.URL{Scheme: "http", Host: h.URL()}
	}
	up := &upstream{target: target, rt: u.transport(h.Protocol(), h.URL()), backend: h.URL(), m: u.m}
	up.duration = u.m.duration.WithLabelValues(h.URL())
	v, _ := u.cache.LoadOrStore(h, up)
	return v.(*upstream)
}

// transport returns the shared round tripper for a protocol; backends with
// their own TLS trust get their own, since trust lives in the transport.
func (u *upstreams) transport(protocol, backendURL string) http.RoundTripper {
	key := protocol
	tlsOpts, ownTLS := u.opts.TLS[backendURL]
	if ownTLS {
		key = protocol + " " + backendURL
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if rt, ok := u.byProto[key]; ok {
		return rt
	}
	h1 := u.newTransport(ownTLS, tlsOpts)
	h1.Protocols = new(http.Protocols)
	h1.Protocols.SetHTTP1(true)
	var rt http.RoundTripper = h1
	if protocol == "h2c" || protocol == "h2" {
		h2 := u.newTransport(ownTLS, tlsOpts)
		h2.Protocols = new(http.Protocols)
		if protocol == "h2c" {
			h2.Protocols.SetUnencryptedHTTP2(true) // prior knowledge: no Upgrade round trip
		} else {
			h2.Protocols.SetHTTP2(true) // ALPN must settle on h2; an HTTP/1-only backend fails loudly
		}
		h2.HTTP2 = &http.HTTP2Config{SendPingTimeout: h2PingAfter, PingTimeout: h2PingTimeout}
		grpc := h2.Clone()
		grpc.ResponseHeaderTimeout = 0
		rt = &multiplexed{h2: h2, grpc: grpc, h1: h1}
		u.closeFns = append(u.closeFns, h2.CloseIdleConnections, grpc.CloseIdleConnections)
	}
	u.byProto[key] = rt
	u.closeFns = append(u.closeFns, h1.CloseIdleConnections)
	return rt
}

func (u *upstreams) newTransport(ownTLS bool, o UpstreamTLS) *http.Transport {
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
	if ownTLS {
		t.TLSClientConfig = &tls.Config{ServerName: o.ServerName, RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12}
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
