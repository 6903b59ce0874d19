package controller

import (
	"context"
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
}

// HTTPProber probes a backend with GET Path and passes it when the answer
// has ExpectedStatus. It has its own transports, apart from the data
// plane's, and opens a fresh connection for every probe (as HAProxy does):
// a probe then tests what a new request needs — that the backend accepts
// connections — and not only that an old connection still answers. An
// https backend with trust settings of its own (Handle.TLS, set from its
// ca_file and server_name) is probed under them.
type HTTPProber struct {
	cfg   HTTPProbeConfig
	check atomic.Pointer[httpCheck] // what a probe asks for and expects; SetCheck swaps it

	mu         sync.Mutex                 // guards transports
	transports map[string]*http.Transport // by protocol, for backends without TLS settings of their own
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
	// Details name the request, so that a backend's state history reads
	// "probe GET /healthz answered 500 (3 of fall 3)".
	what := "GET " + c.path
	start := time.Now()
	t, own := p.transport(h)
	if own {
		defer t.CloseIdleConnections()
	}
	resp, err := t.RoundTrip(req)
	if err != nil {
		switch {
		case errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE):
			return ProbeResult{Result: ProbeLocalError, Detail: what + ": lbd is out of file descriptors: " + shortError(err)}
		case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
			return ProbeResult{Result: ProbeTimeout, Detail: fmt.Sprintf("%s: no answer within %s", what, time.Since(start).Round(time.Millisecond))}
		}
		return ProbeResult{Result: ProbeError, Detail: what + ": " + shortError(err)}
	}
	_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
	resp.Body.Close()
	detail := fmt.Sprintf("%s answered %d", what, resp.StatusCode)
	if resp.StatusCode != c.status {
		if c.status != http.StatusOK { // the usual expectation goes without saying
			detail += fmt.Sprintf(", want %d", c.status)
		}
		return ProbeResult{Result: ProbeBadStatus, Detail: detail}
	}
	return ProbeResult{Result: ProbeSuccess, Detail: detail}
}

// transport returns the transport for h's protocol. A backend with TLS
// settings of its own gets a transport of its own, made for the probe:
// without keep-alives there is nothing to share, and a cache keyed by
// backend would outlive the backends that come and go.
func (p *HTTPProber) transport(h *backendactor.Handle) (t *http.Transport, own bool) {
	proto := h.Protocol()
	if tc := h.TLS(); tc != nil {
		t := p.newTransport(proto)
		t.TLSClientConfig = tc.Clone()
		return t, true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if t, ok := p.transports[proto]; ok {
		return t, false
	}
	t = p.newTransport(proto)
	p.transports[proto] = t
	return t, false
}

func (p *HTTPProber) newTransport(proto string) *http.Transport {
	t := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: p.cfg.DialTimeout}).DialContext,
		TLSHandshakeTimeout: p.cfg.DialTimeout,
		DisableKeepAlives:   true,
		DisableCompression:  true,
		Protocols:           new(http.Protocols),
	}
	switch proto {
	case "h2c":
		t.Protocols.SetUnencryptedHTTP2(true) // an h2c backend may speak nothing else
	case "h2":
		t.Protocols.SetHTTP2(true)
	default:
		t.Protocols.SetHTTP1(true)
	}
	return t
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
