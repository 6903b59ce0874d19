package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
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
	// TLS for h2 (and https http1) backends: extra CA file and server name,
	// by backend URL.
	TLS map[string]UpstreamTLS
}

// UpstreamTLS is one https backend's trust settings.
type UpstreamTLS struct {
	CAFile     string
	ServerName string
}

// upstream is what the proxy keeps per backend: where to send and how.
type upstream struct {
	target   *url.URL
	rt       http.RoundTripper
	duration  prometheus.Observer
	codeCache statusCodes
	backend   string
	m        *metrics
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

// transport returns the shared transport for a protocol; backends with
// their own TLS trust get their own.
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
	t := &http.Transport{
		Proxy:                 nil, // never route backend traffic through an environment proxy
		DialContext:           (&net.Dialer{Timeout: u.opts.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   u.opts.MaxIdleConnsPerHost,
		IdleConnTimeout:       u.opts.IdleConnTimeout,
		ResponseHeaderTimeout: u.opts.ResponseHeaderTimeout,
		TLSHandshakeTimeout:   u.opts.DialTimeout,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true, // pass bodies through as the backend encoded them
	}
	switch protocol {
	case "h2c":
		t.Protocols = new(http.Protocols)
		t.Protocols.SetUnencryptedHTTP2(true)
	case "h2":
		t.Protocols = new(http.Protocols)
		t.Protocols.SetHTTP2(true)
		t.ForceAttemptHTTP2 = true
	}
	if ownTLS {
		cfg, err := tlsConfig(tlsOpts)
		if err != nil {
			// Config validation reads the CA file first; an error here means it changed since.
			cfg = &tls.Config{ServerName: tlsOpts.ServerName}
		}
		t.TLSClientConfig = cfg
	}
	u.byProto[key] = t
	u.closeFns = append(u.closeFns, t.CloseIdleConnections)
	return t
}

func tlsConfig(o UpstreamTLS) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: o.ServerName, MinVersion: tls.VersionTLS12}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificates", o.CAFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

func (u *upstreams) closeIdle() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, f := range u.closeFns {
		f()
	}
}
