package controller

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lbd/lbd/backendactor"
)

// HTTPProbeConfig configures an HTTPProber.
type HTTPProbeConfig struct {
	// Path (default "/healthz") and ExpectedStatus (default 200) are the
	// first check; SetCheck changes them.
	Path           string
	ExpectedStatus int
	DialTimeout    time.Duration
	// TLS holds the client TLS settings of https backends that need their
	// own trust or server name, by normalised backend URL; the others use
	// the system roots.
	TLS map[string]*tls.Config
}

// HTTPProber probes a backend with GET Path and passes it when the answer
// has ExpectedStatus. It has its own transports, apart from the data
// plane's, and opens a fresh connection for every probe (as HAProxy does):
// a probe then tests what a new request needs — that the backend accepts
// connections — and not only that an old connection still answers.
type HTTPProber struct {
	cfg   HTTPProbeConfig
	check atomic.Pointer[httpCheck] // what a probe asks for and expects; SetCheck swaps it

	mu         sync.Mutex                 // guards transports and cfg.TLS
	transports map[string]*http.Transport // by protocol, or protocol and URL for own TLS
}

// NewHTTPProber returns a prober; it is safe for concurrent use.
func NewHTTPProber(c HTTPProbeConfig) *HTTPProber {
	if c.DialTimeout <= 0 {
		c.DialTimeout = 2 * time.Second
	}
	p := &HTTPProber{cfg: c, transports: map[string]*http.Transport{}}
	p.SetCheck(c.Path, c.ExpectedStatus)
	return p
}

// httpCheck is the request a probe makes and the status that passes it.
type httpCheck struct {
	path   string
	status int
}

// SetCheck changes the path probes request and the status that passes
// them ("" and 0 take the defaults, /healthz and 200). Probes started
// after it returns use them; one in flight finishes under the old ones.
// The health checker calls it from Reconfigure (CheckSetter).
func (p *HTTPProber) SetCheck(path string, expectedStatus int) {
	if path == "" {
		path = "/healthz"
	}
	if expectedStatus == 0 {
		expectedStatus = http.StatusOK
	}
	p.check.Store(&httpCheck{path: path, status: expectedStatus})
}

// Probe implements Prober.
func (p *HTTPProber) Probe(ctx context.Context, h *backendactor.Handle) ProbeResult {
	c := p.check.Load()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.URL()+c.path, nil)
	if err != nil {
		return ProbeResult{Result: ProbeError, Detail: err.Error()}
	}
	req.Header.Set("User-Agent", "lbd-health-check")
	resp, err := p.transport(h).RoundTrip(req)
	if err != nil {
		switch {
		case errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE):
			return ProbeResult{Result: ProbeLocalError, Detail: "lbd is out of file descriptors: " + shortError(err)}
		case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
			return ProbeResult{Result: ProbeTimeout, Detail: "no answer within the probe timeout"}
		}
		return ProbeResult{Result: ProbeError, Detail: shortError(err)}
	}
	_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
	resp.Body.Close()
	detail := fmt.Sprintf("status %d", resp.StatusCode)
	if resp.StatusCode != c.status {
		return ProbeResult{Result: ProbeBadStatus, Detail: fmt.Sprintf("%s, want %d", detail, c.status)}
	}
	return ProbeResult{Result: ProbeSuccess, Detail: detail}
}

// transport returns the transport for h's protocol (and TLS settings).
func (p *HTTPProber) transport(h *backendactor.Handle) *http.Transport {
	proto := h.Protocol()
	key := proto
	p.mu.Lock()
	defer p.mu.Unlock()
	tc, own := p.cfg.TLS[h.URL()]
	if own {
		key = proto + " " + h.URL()
	}
	if t, ok := p.transports[key]; ok {
		return t
	}
	t := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: p.cfg.DialTimeout}).DialContext,
		TLSHandshakeTimeout: p.cfg.DialTimeout,
		DisableKeepAlives:   true,
		DisableCompression:  true,
		Protocols:           new(http.Protocols),
	}
	if own {
		t.TLSClientConfig = tc.Clone()
	}
	switch proto {
	case "h2c":
		t.Protocols.SetUnencryptedHTTP2(true) // an h2c backend may speak nothing else
	case "h2":
		t.Protocols.SetHTTP2(true)
	default:
		t.Protocols.SetHTTP1(true)
	}
	p.transports[key] = t
	return t
}

// SetTLS replaces the client TLS settings by backend URL (see
// HTTPProbeConfig.TLS), for backends a reload added or changed. Probes
// started after it returns use them; the transports built for the old
// settings are closed.
func (p *HTTPProber) SetTLS(byURL map[string]*tls.Config) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cfg.TLS = byURL
	for key, t := range p.transports {
		if strings.Contains(key, " ") { // protocol and URL: built for a backend's own TLS
			t.CloseIdleConnections()
			delete(p.transports, key)
		}
	}
}

// CloseIdleConnections closes what the transports keep (nothing, normally:
// probes do not keep connections).
func (p *HTTPProber) CloseIdleConnections() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.transports {
		t.CloseIdleConnections()
	}
}

// shortError keeps the informative tail of a net error ("dial tcp
// 127.0.0.1:8081: connect: connection refused" -> "connect: connection refused").
func shortError(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && strings.Contains(s[:i], "dial") {
		if j := strings.LastIndex(s[:i], ": "); j >= 0 {
			return s[j+2:]
		}
	}
	return s
}
