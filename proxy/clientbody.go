package proxy

// The request body as lbd reads it. A failure to read it is the client's:
// a malformed chunked body, a body over admission.max_body_bytes, a client
// that sends part of it and stops or goes away. The upstream transport
// only sees that writing the request failed, and a backend must never be
// blamed for that (breaker, outlier detection, the adaptive limit): with
// ten such requests one client could take every backend out of service.
// So the body is wrapped, its errors recorded where the transport's
// classification and the error handler look first (clientFault), and the
// client answered with its own status: 400, 408 (stalled, stall.go), 413,
// or 499 when it is gone.

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"syscall"
	"time"
)

// Reject reasons of requests whose body failed (X-Lbd-Reject).
const (
	RejectBadBody     = "bad-body"     // 400: malformed or cut short
	RejectClientStall = "client-stall" // 408: no body byte for timeouts.client_stall
)

// clientBody wraps a request body; it lives inside the request's reqState.
type clientBody struct {
	src      io.ReadCloser
	start    time.Time
	deadline connDeadline // HTTP/1: client_stall by the connection's read deadline
	watch    stallWatch   // HTTP/2: client_stall by a timer
	ended    atomic.Int64 // 1 + offset from start of the end of the body; 0 until then
	failure  atomic.Pointer[bodyFailure]
	// upload is the ticket told of the upload (Ticket.Upload), set before
	// the body is first read and never changed; uploading is true until
	// the body ends or the request leaves admission, whichever is first.
	upload    Ticket
	uploading atomic.Bool
}

// bodyFailure is the first read error of a body and how it is answered.
type bodyFailure struct {
	err    error
	status int
	reason string
}

// clientBodyError marks an error returned by a client body's Read, so that
// whoever sees it (the transport's caller) knows where it came from.
type clientBodyError struct{ err error }

func (e *clientBodyError) Error() string {
	return "reading the client's request body: " + e.err.Error()
}
func (e *clientBodyError) Unwrap() error { return e.err }

// wrapBody installs the wrapper on r; limit is timeouts.client_stall.
func (s *reqState) wrapBody(r *http.Request, limit time.Duration) {
	if r.Body == nil || r.Body == http.NoBody {
		return
	}
	b := &s.body
	b.src, b.start = r.Body, s.start
	if d, ok := s.ResponseWriter.(readDeadliner); ok && r.ProtoMajor == 1 && limit > 0 {
		b.deadline.d, b.deadline.limit = d, limit
	} else if r.ProtoMajor >= 2 {
		b.watch.limit, b.watch.base, b.watch.rw = limit, s.start, s.ResponseWriter
	}
	r.Body = b
}

func (b *clientBody) Read(p []byte) (int, error) {
	if b.deadline.d != nil {
		b.deadline.before()
	}
	b.watch.begin()
	n, err := b.src.Read(p)
	b.watch.end()
	switch {
	case err == nil:
		return n, nil
	case err == io.EOF:
		b.ended.CompareAndSwap(0, int64(time.Since(b.start))+1)
		b.over()
		return n, err
	}
	b.failed(err)
	b.over()
	return n, &clientBodyError{err}
}

// over is the end of the body, read whole or failed.
func (b *clientBody) over() {
	b.deadline.clear()
	b.watch.stop()
	b.endUpload()
}

// startUpload tells t that the body is still to come, for a body that
// streams (one read before admission, or none, needs no telling). It runs
// on the request's goroutine after Admit and before anything reads the
// body.
func (b *clientBody) startUpload(t Ticket) {
	if b.src == nil || b.ended.Load() != 0 || b.failure.Load() != nil {
		return
	}
	b.upload = t
	b.uploading.Store(true)
	t.Upload(true)
}

// endUpload tells the ticket, once, that the upload is over.
func (b *clientBody) endUpload() {
	if b.uploading.CompareAndSwap(true, false) {
		b.upload.Upload(false)
	}
}

func (b *clientBody) Close() error { return b.src.Close() }

func (b *clientBody) failed(err error) {
	f := &bodyFailure{err: err, status: http.StatusBadRequest, reason: RejectBadBody}
	switch {
	case b.watch.stalled.Load() || isTimeout(err):
		f.status, f.reason = http.StatusRequestTimeout, RejectClientStall
	case isBodyTooLarge(err):
		f.status, f.reason = http.StatusRequestEntityTooLarge, RejectBodyTooLarge
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed):
		f.status, f.reason = statusClientClosed, ""
	}
	b.failure.CompareAndSwap(nil, f)
}

// noteStall records a stall the request learnt of by its context: when
// the read deadline lbd set on an HTTP/1 connection fires, net/http
// cancels the request at once, and the transport may see that before the
// body's reader sees its timeout. Without this the request would pass for
// one whose client left (499, nothing sent), and net/http would answer
// the client that is still there with an empty 200.
func (b *clientBody) noteStall() {
	if b.failure.Load() == nil && b.deadline.d != nil && b.deadline.expired(time.Now()) {
		b.failed(os.ErrDeadlineExceeded)
	}
}

// endedAt is the offset from the request's start at which its body was
// read to the end, or 0 when it was not (yet, or ever).
func (b *clientBody) endedAt() time.Duration {
	if e := b.ended.Load(); e > 0 {
		return time.Duration(e - 1)
	}
	return 0
}

// statusClientClosed is nginx's "client closed request": logged, never sent.
const statusClientClosed = 499

// clientFault reports whether a failed forward is the client's doing: its
// body could not be read, or lbd itself is out of file descriptors (which
// says nothing about the backend either). The transport counts such a
// failure as Canceled for the backend.
func clientFault(ctx context.Context, err error) bool {
	if st := stateOf(ctx); st != nil && st.body.failure.Load() != nil {
		return true
	}
	if err == nil { // the common case, at every response's end: no errors.As, whose target escapes
		return false
	}
	var cbe *clientBodyError
	return errors.As(err, &cbe) || localExhaustion(err)
}

// localExhaustion reports an error of lbd's own making: no descriptor left
// for a new connection (EMFILE, ENFILE).
func localExhaustion(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// answerBodyFailure answers a request whose body failed, and reports
// whether it did. The connection is closed after the answer: what is left
// of the body cannot be told from a next request.
func (s *reqState) answerBodyFailure(r *http.Request) bool {
	s.body.noteStall()
	f := s.body.failure.Load()
	if f == nil {
		return false
	}
	if f.status == statusClientClosed {
		s.status = statusClientClosed
		return true
	}
	if r.ProtoMajor == 1 {
		s.Header().Set("Connection", "close")
	}
	s.reject(f.status, f.reason, 0)
	return true
}
