package loadgen

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Run sends load as cfg describes and returns what it measured. It returns
// an error without sending anything when cfg is invalid (including a
// non-loopback target). When ctx ends early, in-flight requests are
// cancelled and Run returns the partial Result together with ctx.Err().
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	g := &gen{cfg: cfg, rec: newRecorder(), client: cfg.Client}
	if g.client == nil {
		tr := newTransport(cfg)
		defer tr.CloseIdleConnections()
		g.client = &http.Client{
			Transport:     tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if cfg.BodySize > 0 {
		g.body = bytes.Repeat([]byte("x"), cfg.BodySize)
	}
	g.rec.res.URL, g.rec.res.Mode = cfg.URL, cfg.Mode()

	start := time.Now()
	dispatch, stop := context.WithTimeout(ctx, cfg.Duration)
	defer stop()
	if cfg.Rate > 0 {
		g.rec.res.TargetRate = cfg.Rate
		g.openLoop(ctx, dispatch, start)
	} else {
		g.rec.res.Concurrency = cfg.Concurrency
		g.closedLoop(ctx, dispatch)
	}
	if cfg.dispatched != nil {
		cfg.dispatched()
	}
	g.wg.Wait()
	return g.rec.result(time.Since(start)), ctx.Err()
}

type gen struct {
	cfg    Config
	rec    *recorder
	client *http.Client
	body   []byte
	wg     sync.WaitGroup
}

// closedLoop runs Concurrency workers that share the budget of N requests
// and stop taking new ones when dispatch ends. Requests run under ctx (not
// dispatch), so the last ones finish or time out rather than being cut off.
// It returns when every worker has stopped.
func (g *gen) closedLoop(ctx, dispatch context.Context) {
	var issued atomic.Int64
	var workers sync.WaitGroup
	for range g.cfg.Concurrency {
		workers.Go(func() {
			for dispatch.Err() == nil && issued.Add(1) <= int64(g.cfg.N) {
				g.do(ctx, time.Now())
			}
		})
	}
	workers.Wait()
}

// openLoop schedules arrival i at start + i/Rate. An arrival finding
// MaxOutstanding requests in flight is dropped; one sent well after its due
// time is counted late. Both say the generator, not the target, set the pace.
func (g *gen) openLoop(ctx, dispatch context.Context, start time.Time) {
	interval := time.Duration(float64(time.Second) / g.cfg.Rate)
	lateAfter := max(interval, time.Millisecond)
	slots := make(chan struct{}, g.cfg.MaxOutstanding)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := range g.cfg.N {
		due := start.Add(time.Duration(float64(i) * float64(time.Second) / g.cfg.Rate))
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-dispatch.Done():
				return
			case <-timer.C:
			}
		} else if dispatch.Err() != nil {
			return
		}
		select {
		case slots <- struct{}{}:
		default:
			g.rec.dropped()
			continue
		}
		if time.Since(due) > lateAfter {
			g.rec.late()
		}
		g.wg.Go(func() {
			defer func() { <-slots }()
			g.do(ctx, due)
		})
	}
}

// do sends one request and records its outcome, latency counted from due.
func (g *gen) do(ctx context.Context, due time.Time) {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()
	var body io.Reader
	if g.body != nil {
		body = bytes.NewReader(g.body)
	}
	req, err := http.NewRequestWithContext(ctx, g.cfg.Method, g.cfg.URL, body)
	if err != nil {
		g.rec.failed(err)
		return
	}
	for k, vs := range g.cfg.Header {
		if http.CanonicalHeaderKey(k) == "Host" && len(vs) > 0 {
			req.Host = vs[0]
			continue
		}
		req.Header[k] = append([]string(nil), vs...)
	}
	g.rec.sent()
	resp, err := g.client.Do(req)
	if err != nil {
		g.rec.failed(err)
		return
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		g.rec.failed(err)
		return
	}
	g.rec.completed(resp.StatusCode, time.Since(due), resp.Header.Get("X-Backend"), resp.Header.Get("X-Lbd-Reject"))
}

func newTransport(cfg Config) *http.Transport {
	conns := cfg.Concurrency
	if cfg.Rate > 0 {
		conns = cfg.MaxOutstanding
	}
	d := &net.Dialer{Timeout: cfg.Timeout, Control: loopbackOnly}
	tr := &http.Transport{
		DialContext:         d.DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   true,
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: cfg.Insecure}, //nolint:gosec // opt-in for loopback test certs
	}
	if cfg.H2C {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	return tr
}

// loopbackOnly refuses a connection to any resolved address that is not
// loopback, whatever name led there.
func loopbackOnly(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("dial %s: %w", address, err)
	}
	if !ap.Addr().Unmap().IsLoopback() {
		return fmt.Errorf("dial %s: %w", address, ErrNotLoopback)
	}
	return nil
}
