package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lbd/lbd/backendactor"
	"github.com/lbd/lbd/proxy/h1"
	"github.com/lbd/lbd/scheduler"
)

// RetryOptions bound retries.
type RetryOptions struct {
	// Max is how many times a request may be sent again after a try that
	// the backend may have acted on (a 5xx answer, a connection broken
	// after the request went out). A try the backend cannot have received
	// (see undelivered) is sent elsewhere without counting here.
	Max int
	// BudgetPercent caps the retries of the last 10 s at this share of the
	// requests of that time, plus MinPerSecond a second (retrybudget.go),
	// so that retries cannot multiply the load on an already failing
	// system. Tries the backend never received cost it nothing and are not
	// budgeted.
	BudgetPercent float64
	MinPerSecond  int
	PerTryTimeout time.Duration
	// BufferBodyBytes is the largest request body read into memory so that
	// the request can be retried; 0 never buffers (see bufferBody).
	BufferBodyBytes int64
}

// retryTransport is ReverseProxy's Transport: it picks a backend per attempt,
// forwards, classifies the outcome and, when it is safe, tries another backend.
//
// The rules, in the order they are checked (API.md, "Data plane behaviour"):
//
//   - a try the backend cannot have received — the connection was refused or
//     never made, or nothing of the request was written to it — is sent to
//     another backend, whatever the method, the budget and retries.max: it
//     costs the backends nothing and the request has not happened yet;
//   - a try the backend may have acted on — a retryable 5xx answer, a
//     connection reset or closed before the answer — is sent again only
//     for an idempotent method (GET, HEAD, OPTIONS, PUT, DELETE, TRACE),
//     within retries.max and the retry budget: a POST the backend read and
//     then died on must not run twice;
//   - when no further try happens, the client gets the last backend answer
//     if any try produced one (nginx's proxy_next_upstream and Envoy do the
//     same), else lbd's own 502 or 504.
type retryTransport struct {
	h      *Handler
	ups    atomic.Pointer[upstreams] // replaced when the transport settings change
	budget retryBudget               // what retries that add load may spend
}

var errHeldBroken = errors.New("upstream 5xx answer broke off while read")

// tryVerdict is what one try leaves the request to do next.
type tryVerdict uint8

const (
	final       tryVerdict = iota // the answer or the error is the request's
	undelivered                   // the backend cannot have received it: send it elsewhere, free
	answered5xx                   // a retryable 5xx answer: another backend may do better
	broken                        // delivered, then the connection failed before an answer
)

// RoundTrip implements http.RoundTripper.
func (t *retryTransport) RoundTrip(out *http.Request) (*http.Response, error) {
	st := stateOf(out.Context())
	if err := bufferBody(out, st.settings.Retries.BufferBodyBytes); err != nil {
		return nil, err
	}
	t.budget.deposit(st.start.Unix())
	var held *heldAnswer // the latest 5xx answer, kept in case no other try does better
	var lastErr error
	retries := 0
	for {
		resp, v, err := t.attempt(out, st)
		switch v {
		case final:
			if resp != nil {
				held.discard()
				return resp, nil
			}
			if held != nil && !clientGone(out) {
				return held.answer(st), nil
			}
			held.discard()
			if errors.Is(err, scheduler.ErrNoBackend) && lastErr != nil {
				err = lastErr // no backend left to try: the failure that sent us looking is the answer
			}
			return nil, err
		case answered5xx:
			held.discard()
			if held = hold(resp, st); held == nil {
				lastErr = errHeldBroken
			}
		default:
			lastErr = err
		}
		if st.attempts >= maxTries || clientGone(out) || st.wrote {
			break
		}
		if v != undelivered {
			r := &st.settings.Retries
			if retries >= r.Max || !t.budget.withdraw(time.Now().Unix(), r.BudgetPercent, r.MinPerSecond) {
				break
			}
			retries++
		}
	}
	if held != nil {
		return held.answer(st), nil
	}
	return nil, lastErr
}

func clientGone(r *http.Request) bool { return r.Context().Err() != nil }

// attempt picks one backend and forwards once.
func (t *retryTransport) attempt(out *http.Request, st *reqState) (*http.Response, tryVerdict, error) {
	h, err := st.pick(out)
	if err != nil {
		return nil, final, err
	}
	if st.attempts < maxTries {
		st.tries[st.attempts] = h
	}
	st.attempts++
	if st.attempts > 1 {
		t.h.metrics.retries.Inc()
	}
	st.backend = h
	up := t.ups.Load().get(h, st.pool.name)
	st.up = up
	req := out
	if st.attempts > 1 { // a fresh shallow copy: the transport may still hold the last one
		r2 := *out
		u := *out.URL
		r2.URL = &u
		body, err := freshBody(out)
		if err != nil { // resendable said yes; a GetBody that fails is a bug worth a 502, not a panic
			h.Release(0, backendactor.Canceled)
			return nil, final, err
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
	req, span := st.traceAttempt(req, up, h)
	// Only a request that must not be sent twice needs to know whether any
	// of it was written on a shared HTTP/2 transport (proxy/h1 says so in
	// its error): the trace costs a few allocations, which the common
	// idempotent request does without.
	var sent *sendTrace
	if !idempotent(out) && resendable(out) {
		sent = &sendTrace{}
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{GotConn: sent.gotConn}))
	}
	start := time.Now()
	resp, err := up.rt.RoundTrip(req)
	lat := time.Since(start)
	st.upstream = lat
	st.tapTry(h, resp, err, lat)
	if err != nil {
		cancel()
		attemptFailed(span, err)
		o := classifyErr(out.Context(), err)
		h.Release(lat, o)
		switch {
		case o != backendactor.GatewayError || !resendable(out):
			return nil, final, err
		case undeliveredErr(err) || sent.nothingWritten():
			return nil, undelivered, err
		case idempotent(out) && brokenErr(err):
			return nil, broken, err
		}
		return nil, final, err
	}
	o := classifyStatus(resp)
	resp.Body = newReleaseBody(resp, h, lat, o, cancel, span)
	if resp.StatusCode == http.StatusSwitchingProtocols {
		st.upgraded(h, resp.Body)
	}
	if o == backendactor.ServerError && retryableStatus(resp.StatusCode) && idempotent(out) && resendable(out) {
		return resp, answered5xx, nil
	}
	return resp, final, nil
}

// idempotent reports whether the method may be applied twice with the
// effect of once (RFC 9110, 9.2.2).
func idempotent(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodTrace:
		return true
	}
	return false
}

// resendable reports whether the request's body can be sent again: absent,
// or buffered (bufferBody).
func resendable(r *http.Request) bool {
	return r.Body == nil || r.Body == http.NoBody || r.GetBody != nil
}

// undeliveredErr reports errors that prove the backend never received the
// request: no connection was made (refused, unreachable, or the dial timed
// out), or proxy/h1 wrote not one byte of it (ErrNotSent: the dial, the TLS
// handshake or the first write failed). net/http itself resends a request
// whose reused connection turned out dead before any byte was written (when
// the body can be rewound), so such a failure reaches here as the error of
// its fresh connection's dial.
func undeliveredErr(err error) bool {
	var op *net.OpError
	return (errors.As(err, &op) && op.Op == "dial") || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, h1.ErrNotSent)
}

// brokenErr reports a connection that failed after the request went out and
// before an answer: the backend may have acted on it. Timeouts are not
// among them: the backend may still be working on it.
func brokenErr(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
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
