package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lbd/lbd/backendactor"
	"github.com/lbd/lbd/scheduler"
)

// RetryOptions bound retries.
type RetryOptions struct {
	Max int // retries after the first try
	// BudgetPercent caps concurrent retries at this share of active requests
	// (with a floor of MinConcurrent), as Envoy's retry budget does, so that
	// retries cannot multiply the load on an already failing system.
	BudgetPercent float64
	MinConcurrent int
	PerTryTimeout time.Duration
	// BufferBodyBytes is the largest request body read into memory so that
	// the request can be retried; 0 never buffers (see bufferBody).
	BufferBodyBytes int64
}

// retryTransport is ReverseProxy's Transport: it picks a backend per attempt,
// forwards, classifies the outcome and, when it is safe, tries another backend.
type retryTransport struct {
	h      *Handler
	ups    atomic.Pointer[upstreams] // replaced when the transport settings change
	active atomic.Int64              // retries in progress
}

var errUpstream5xx = errors.New("upstream answered 5xx")

// RoundTrip implements http.RoundTripper.
func (t *retryTransport) RoundTrip(out *http.Request) (*http.Response, error) {
	st := stateOf(out.Context())
	if err := bufferBody(out, st.settings.Retries.BufferBodyBytes); err != nil {
		return nil, err
	}
	var lastErr error
	for try := 0; try < maxTries; try++ {
		if try > 0 {
			if !t.mayRetry(out, st, try) {
				break
			}
			t.active.Add(1)
			t.h.metrics.retries.Inc()
		}
		resp, retry, err := t.attempt(out, st)
		if try > 0 {
			t.active.Add(-1)
		}
		if err == nil || !retry {
			return resp, err
		}
		lastErr = err
	}
	return nil, lastErr
}

// attempt picks one backend and forwards once. retry says whether the
// failure left the request safe to send elsewhere.
func (t *retryTransport) attempt(out *http.Request, st *reqState) (*http.Response, bool, error) {
	h, err := st.pool.picker().Pick(out, st.client, st.tried())
	if err != nil {
		return nil, false, err
	}
	if st.attempts < maxTries {
		st.tries[st.attempts] = h
	}
	st.attempts++
	st.backend = h
	up := t.ups.Load().get(h, st.pool.name)
	st.up = up
	req := out
	if st.attempts > 1 { // a fresh shallow copy: the transport may still hold the last one
		r2 := *out
		u := *out.URL
		r2.URL = &u
		body, err := freshBody(out)
		if err != nil { // replayable said yes; a GetBody that fails is a bug worth a 502, not a panic
			h.Release(0, backendactor.Canceled)
			return nil, false, err
		}
		r2.Body = body
		req = &r2
	}
	req.URL.Scheme, req.URL.Host = up.target.Scheme, up.target.Host
	var cancel context.CancelFunc = func() {}
	if pt := st.settings.Retries.PerTryTimeout; pt > 0 {
		var ctx context.Context
		ctx, cancel = context.WithTimeout(req.Context(), pt)
		req = req.WithContext(ctx)
	}
	start := time.Now()
	resp, err := up.rt.RoundTrip(req)
	lat := time.Since(start)
	st.upstream = lat
	if err != nil {
		cancel()
		o := classifyErr(out.Context(), err)
		h.Release(lat, o)
		return nil, o == backendactor.GatewayError && replayable(out) && notSent(err), err
	}
	o := classifyStatus(resp)
	if o == backendactor.ServerError && retryableStatus(resp.StatusCode) && replayable(out) && t.mayRetry(out, st, st.attempts) {
		// Drop this answer and try elsewhere; the client never saw it.
		h.Release(lat, o)
		_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
		resp.Body.Close()
		cancel()
		return nil, true, errUpstream5xx
	}
	resp.Body = newReleaseBody(resp, h, lat, o, cancel)
	if resp.StatusCode == http.StatusSwitchingProtocols {
		st.upgraded(h)
	}
	return resp, false, nil
}

// mayRetry applies the retry rules that do not depend on the failure itself.
func (t *retryTransport) mayRetry(out *http.Request, st *reqState, try int) bool {
	r := &st.settings.Retries
	if try > r.Max || st.wrote || out.Context().Err() != nil {
		return false
	}
	budget := int64(float64(t.h.active.Load()) * r.BudgetPercent / 100)
	return t.active.Load() < max(budget, int64(max(r.MinConcurrent, 1)))
}

// replayable reports whether the request can be sent again: an idempotent
// method and a body that is absent or can be produced again.
func replayable(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodTrace:
	default:
		if r.GetBody == nil {
			return false
		}
	}
	return r.Body == nil || r.Body == http.NoBody || r.GetBody != nil
}

// notSent reports errors after which the backend cannot have acted on the
// request: the connection was never made or was refused or reset before a
// response. Timeouts are not retried: the backend may still be working.
func notSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, errUpstream5xx)
}

func retryableStatus(code int) bool {
	return code == http.StatusBadGateway || code == http.StatusServiceUnavailable ||
		code == http.StatusGatewayTimeout || code == http.StatusInternalServerError
}

func classifyStatus(resp *http.Response) backendactor.Outcome {
	if resp.StatusCode >= 500 {
		return backendactor.ServerError
	}
	return backendactor.Success
}

func classifyErr(ctx context.Context, err error) backendactor.Outcome {
	if clientFault(ctx, err) { // the client's body failed, or lbd ran out of descriptors (clientbody.go)
		return backendactor.Canceled
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return backendactor.Canceled
	}
	if errors.Is(err, scheduler.ErrNoBackend) {
		return backendactor.Canceled
	}
	return backendactor.GatewayError
}

// releaseBody returns the backend's slot when ReverseProxy closes the body:
// the request counts as in flight while its response streams. The outcome
// is settled then too, since a gRPC call's status and a stream broken
// mid-way are only known at the end (outcome).
type releaseBody struct {
	io.ReadCloser
	resp   *http.Response
	h      *backendactor.Handle
	lat    time.Duration
	o      backendactor.Outcome // as judged from the response headers
	cancel context.CancelFunc
	done   atomic.Bool
	eof    atomic.Bool // read to the end: trailers are in
	broken atomic.Bool // a read failed before the end
}

// releaseRWBody is releaseBody for a 101 Switching Protocols response, whose
// body is the upgraded connection: the WebSocket holds its slot until closed.
type releaseRWBody struct{ *releaseBody }

func (b releaseRWBody) Write(p []byte) (int, error) {
	return b.ReadCloser.(io.ReadWriteCloser).Write(p)
}

func newReleaseBody(resp *http.Response, h *backendactor.Handle, lat time.Duration, o backendactor.Outcome, cancel context.CancelFunc) io.ReadCloser {
	rb := &releaseBody{ReadCloser: resp.Body, resp: resp, h: h, lat: lat, o: o, cancel: cancel}
	if _, ok := resp.Body.(io.ReadWriteCloser); ok {
		return releaseRWBody{rb}
	}
	return rb
}

func (b *releaseBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.eof.Store(true)
	} else if err != nil {
		b.broken.Store(true)
	}
	return n, err
}

func (b *releaseBody) Close() error {
	err := b.ReadCloser.Close()
	if b.done.CompareAndSwap(false, true) {
		b.h.Release(b.lat, b.outcome())
		b.cancel()
	}
	return err
}

// outcome is the request's outcome once its response has ended: a body
// that broke off while the client was still there is a gateway failure, and
// a gRPC call counts by its grpc-status (grpcOutcome). An upgraded
// connection counts by its 101 alone: how it ends is the two peers' affair.
func (b *releaseBody) outcome() backendactor.Outcome {
	if b.resp.StatusCode == http.StatusSwitchingProtocols || b.o != backendactor.Success {
		return b.o
	}
	clientGone := b.resp.Request != nil && (b.resp.Request.Context().Err() != nil || clientFault(b.resp.Request.Context(), nil))
	switch {
	case b.broken.Load() && !clientGone:
		return backendactor.GatewayError
	case !isGRPC(b.resp.Header):
		return b.o
	}
	if status, ok := grpcStatus(b.resp, b.eof.Load()); ok || b.eof.Load() {
		return grpcOutcome(status, ok)
	}
	if clientGone {
		return backendactor.Canceled
	}
	return b.o
}
