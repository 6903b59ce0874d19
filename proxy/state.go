package proxy

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/lbd/lbd/backendactor"
)

// maxTries bounds the backends one request may try (1 + retries).
const maxTries = 8

// reqState is everything one request learns on its way, the
// ResponseWriter that records what was sent, and the request's context as
// the proxy passes it on. One allocation per request.
type reqState struct {
	http.ResponseWriter
	context.Context // the request's own; see Value
	id, client      string
	start           time.Time
	headers         time.Duration // from start to the response headers, 0 until sent
	status          int
	bytes           int64
	wrote           bool // response headers (or bytes) reached the client: no retry after that
	backend         *backendactor.Handle
	up              *upstream
	upstream        time.Duration // time to the chosen backend's response headers
	tries           [maxTries]*backendactor.Handle
	attempts        int
	rejected        string          // X-Lbd-Reject reason, if lbd answered itself
	grpc            *grpcCall       // set for gRPC calls: lbd answers them in gRPC
	upgrade         *upgradeConn    // set when the request asks to switch protocols (websocket.go)
	ticket          Ticket          // to tell when the request is over; nil once told
	route           *route          // the route that matched (nil: none did)
	pool            *Pool           // its pool
	settings        *PoolSettings   // the pool's settings when the request started
	live            *Live           // the data plane's settings when the request started
	span            trace.Span      // the server span; nil with tracing off (tracing.go)
	spanCtx         context.Context // holds span and the caller's baggage, for the attempts' spans
	root            unsampledRoot   // span, when Roots did not sample a request that brought no trace
	continue100     bool            // the client waits for "100 Continue" before its body
	hdr             [hdrSlots]string
	upHeader        http.Header   // the response's header as the transport made it (moveHeader)
	tap             *tapRecord    // set while someone listens to the tap (tap.go)
	body            clientBody    // the request body's wrapper (clientbody.go), when it has one
	writes          stallWatch    // HTTP/2 writes to the client (stall.go)
	admitted        time.Duration // from start to admission, when the body was read before it
}

// Slots in reqState.hdr for the header values lbd sets on every request.
const (
	hdrRequestID  = iota // X-Request-Id, to the backend
	hdrResponseID        // X-Request-Id, to the client
	hdrForwardedFor
	hdrForwardedHost
	hdrForwardedProto
	hdrRealIP
	hdrTraceparent // to the backend, unsampled (tracing.go)
	hdrSlots
)

// Value makes the state its own context value (stateOf), so that passing
// it down costs no context.WithValue of its own.
func (s *reqState) Value(key any) any {
	if _, ok := key.(ctxKey); ok {
		return s
	}
	return s.Context.Value(key)
}

// setHeader sets h[key] to the one value v, kept in the state's slot i:
// the value's slice costs no allocation of its own (Header.Set makes one).
func (s *reqState) setHeader(h http.Header, key string, slot int, v string) {
	s.hdr[slot] = v
	h[key] = s.hdr[slot : slot+1 : slot+1]
}

// leaveAdmission gives the request's place under the limits back, once:
// when its response headers are sent (WriteHeader), when it became an
// upgraded connection, or at its end if neither happened. The limits bound
// what the adaptive limit measures, the time to response headers, where
// queueing in lbd and in the backends shows; a response body streaming to
// a slow client, or to one that stopped reading, holds its backend slot
// (bounded by timeouts.client_stall) but no place other clients need.
// A request whose body the client botched gives no latency sample: its
// time is the client's, not the backends'.
func (s *reqState) leaveAdmission() {
	if t := s.ticket; t != nil {
		s.ticket = nil
		s.body.endUpload()
		if s.body.failure.Load() != nil {
			t.Leave()
			return
		}
		t.Done(s.latency(), s.failedUpstream())
	}
}

func (s *reqState) tried() []*backendactor.Handle { return s.tries[:min(s.attempts, maxTries)] }

// latency is the request's latency as the adaptive limit sees it: up to the
// response headers, which is where queueing in lbd and in the backend
// shows, so that a long download, an SSE stream or a WebSocket does not
// read as a slow backend. Without headers (the client left) it is the whole
// request. It starts at admission when the body was read before it, and
// at the end of the body when that came before the headers: how long a
// client takes to send its body says nothing about the backends, and a
// slow upload must not drive the limit down.
func (s *reqState) latency() time.Duration {
	end := s.headers
	if end <= 0 {
		end = time.Since(s.start)
	}
	from := s.admitted
	if e := s.body.endedAt(); e > from && e < end {
		from = e
	}
	return end - from
}

// WriteHeader records the status.
func (s *reqState) WriteHeader(code int) {
	if !s.wrote && code >= 200 {
		s.status, s.wrote = code, true
		s.headers = time.Since(s.start)
		s.leaveAdmission()
	}
	s.ResponseWriter.WriteHeader(code)
}

// Write records the bytes sent.
func (s *reqState) Write(b []byte) (int, error) {
	s.wrote = true
	s.writes.begin()
	n, err := s.ResponseWriter.Write(b)
	s.writes.end()
	s.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach Flush and Hijack (SSE, WebSocket).
func (s *reqState) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Flush passes flushes through for streaming responses.
func (s *reqState) Flush() {
	s.wrote = true
	s.writes.begin()
	_ = http.NewResponseController(s.ResponseWriter).Flush()
	s.writes.end()
}

// reject answers the request from lbd itself with a reason header.
func (s *reqState) reject(status int, reason string, retryAfter time.Duration) {
	s.rejected = reason
	h := s.Header()
	h.Set("X-Lbd-Reject", reason)
	if retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int((retryAfter+time.Second-1)/time.Second)))
	}
	s.fail(status, reason)
}

// fail writes lbd's own error answer: the status with a short text body, or
// for a gRPC call a Trailers-Only answer whose grpc-status says what went
// wrong in gRPC's terms (grpcAnswer).
func (s *reqState) fail(status int, reason string) {
	if s.grpc != nil {
		s.grpcFail(status, reason)
		return
	}
	s.Header().Set("Content-Type", "text/plain; charset=utf-8")
	s.WriteHeader(status)
	msg := http.StatusText(status)
	if reason != "" {
		msg += ": " + reason
	}
	_, _ = s.Write([]byte(msg + "\n"))
}
