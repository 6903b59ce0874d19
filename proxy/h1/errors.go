package h1

import (
	"errors"
	"fmt"
)

// ErrNotSent is wrapped by every RoundTrip error that happened before any
// byte of the request was written to a connection: the dial or the TLS
// handshake failed, the context ended first, the request was invalid, or
// the very first write failed. The backend cannot have acted on such a
// request, so it may be sent to another backend whatever its method. Test
// it with errors.Is; the error also wraps its cause (a *net.OpError, ...).
var ErrNotSent = errors.New("request not sent")

// ErrResponseHeaderTimeout is returned when the backend's response head
// did not arrive within Options.ResponseHeaderTimeout of the request being
// written. It is a net.Error whose Timeout is true.
var ErrResponseHeaderTimeout error = timeoutError("h1: timeout awaiting response headers")

type timeoutError string

func (e timeoutError) Error() string   { return string(e) }
func (e timeoutError) Timeout() bool   { return true }
func (e timeoutError) Temporary() bool { return true }

// notSentError wraps a failure that left the request unsent.
type notSentError struct{ err error }

func (e *notSentError) Error() string   { return "h1: request not sent: " + e.err.Error() }
func (e *notSentError) Unwrap() []error { return []error{ErrNotSent, e.err} }

func notSent(err error) error {
	if errors.Is(err, ErrNotSent) {
		return err
	}
	return &notSentError{err}
}

// ProtocolError is a response the backend got wrong: a malformed or
// oversized head, a body whose framing cannot be trusted. The proxy answers
// 502 for it; the connection it came on is closed.
type ProtocolError struct{ err error }

func (e *ProtocolError) Error() string { return "h1: backend " + e.err.Error() }
func (e *ProtocolError) Unwrap() error { return e.err }

func protoErr(format string, args ...any) error {
	return &ProtocolError{fmt.Errorf(format, args...)}
}

// quote bounds how much of a bad line an error message repeats.
func quote(b []byte) string {
	const most = 64
	if len(b) > most {
		return fmt.Sprintf("%q...", b[:most])
	}
	return fmt.Sprintf("%q", b)
}
