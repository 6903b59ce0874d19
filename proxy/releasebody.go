package proxy

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/lbd/lbd/backendactor"
	"go.opentelemetry.io/otel/trace"
)

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
	span   trace.Span // the attempt's client span, ended here; nil with tracing off
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

func newReleaseBody(resp *http.Response, h *backendactor.Handle, lat time.Duration, o backendactor.Outcome, cancel context.CancelFunc, span trace.Span) io.ReadCloser {
	rb := &releaseBody{ReadCloser: resp.Body, resp: resp, h: h, lat: lat, o: o, cancel: cancel, span: span}
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
		o := b.outcome()
		b.h.Release(b.lat, o)
		b.cancel()
		attemptAnswered(b.span, b.resp, o, b.eof.Load())
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
