package proxy

// Spans, by the OpenTelemetry HTTP semantic conventions. Each request gets
// a SERVER span, joined to the caller's trace when a traceparent came with
// it, named by its method and what it matched ("GET api": the route's name,
// or its pool's when the route has none; "GET" when nothing matched): low
// cardinality, never the path. Each attempt gets a CLIENT span under it,
// named by the method, and the backend receives a traceparent naming that
// span as its parent, so a retry shows as two client spans, the first in
// error. A client span ends with the response body (a stream's end, a
// WebSocket's close), when its outcome is known. Requests lbd answers itself
// (rejected, no route) get the server span with lbd.reject and no client span.
//
// The SDK stays out of this package: it sees the OpenTelemetry API only.
// With tracing off (Live.Tracing nil) a request pays one nil check and the
// traceparent passes through untouched; attributes are computed only for
// spans that record (sampled).

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strconv"
	"syscall"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/lbd/lbd/backendactor"
)

// Tracing is what the data plane traces with: a tracer and the propagator
// that reads and writes traceparent, tracestate and baggage. Immutable; a
// reload installs a new one through SetLive.
type Tracing struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	roots  RootSampler // nil: every request's server span starts in the SDK
}

// RootSampler decides, before the SDK is asked, whether a request that
// brought no trace is sampled (tracing.Roots): Draw returns the new trace's
// ids and the decision; WithTraceID puts the trace id into the context a
// sampled one's server span starts from, for the SDK to use.
type RootSampler interface {
	Draw() (trace.TraceID, trace.SpanID, bool)
	WithTraceID(ctx context.Context, tid trace.TraceID) context.Context
}

// NewTracing returns the data plane's tracing over tp and prop; roots may
// be nil.
func NewTracing(tp trace.TracerProvider, prop propagation.TextMapPropagator, roots RootSampler) *Tracing {
	return &Tracing{tracer: tp.Tracer("github.com/lbd/lbd/proxy"), prop: prop, roots: roots}
}

// unsampledRoot is the server span of a request that brought no trace and
// that Roots did not sample: a span that records nothing, with the drawn
// ids, kept in the request's state, so that such a request's trace
// allocates nothing. (noop.Span would do but for its ids, and embedding it
// would carry a second, unused span context in every request's state.)
type unsampledRoot struct {
	embedded.Span
	sc trace.SpanContext
}

func (s *unsampledRoot) SpanContext() trace.SpanContext        { return s.sc }
func (*unsampledRoot) IsRecording() bool                       { return false }
func (*unsampledRoot) End(...trace.SpanEndOption)              {}
func (*unsampledRoot) AddEvent(string, ...trace.EventOption)   {}
func (*unsampledRoot) AddLink(trace.Link)                      {}
func (*unsampledRoot) RecordError(error, ...trace.EventOption) {}
func (*unsampledRoot) SetStatus(codes.Code, string)            {}
func (*unsampledRoot) SetName(string)                          {}
func (*unsampledRoot) SetAttributes(...attribute.KeyValue)     {}
func (*unsampledRoot) TracerProvider() trace.TracerProvider    { return noop.NewTracerProvider() }

// lbd's own span attributes.
const (
	attrPool      = attribute.Key("lbd.pool")
	attrRoute     = attribute.Key("lbd.route")
	attrPolicy    = attribute.Key("lbd.policy")
	attrReject    = attribute.Key("lbd.reject")
	attrRequestID = attribute.Key("lbd.request_id")
	attrAttempts  = attribute.Key("lbd.attempts")
	attrBackend   = attribute.Key("lbd.backend")
	attrAttempt   = attribute.Key("lbd.attempt")
)

var (
	serverSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
	clientSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}
)

// knownMethods are the methods the conventions name; any other is "_OTHER"
// in http.request.method and "HTTP" in span names.
var knownMethods = [...]string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete,
	http.MethodConnect, http.MethodOptions, http.MethodTrace, http.MethodPatch,
}

func methodIndex(m string) int {
	for i, k := range knownMethods {
		if m == k {
			return i
		}
	}
	return len(knownMethods)
}

// spanNames are a route's server span names, one per known method and a
// last for the others, made once with the routing table.
type spanNames [len(knownMethods) + 1]string

func newSpanNames(target string) *spanNames {
	var n spanNames
	for i, m := range knownMethods {
		n[i] = m + " " + target
	}
	n[len(knownMethods)] = "HTTP " + target
	return &n
}

func (c *route) spanName(method string) string {
	i := methodIndex(method)
	if c == nil || c.spanNames == nil {
		if i == len(knownMethods) {
			return "HTTP"
		}
		return knownMethods[i]
	}
	return c.spanNames[i]
}

// startServer starts the request's server span, joined to the caller's
// trace. The context holding it (and the caller's baggage) is kept in st for
// the attempts' spans rather than put in the request, which would cost a copy
// of the request.
func (t *Tracing) startServer(r *http.Request, st *reqState) {
	ctx := t.prop.Extract(r.Context(), headerCarrier(r.Header))
	if t.roots != nil && !trace.SpanContextFromContext(ctx).IsValid() {
		tid, sid, sampled := t.roots.Draw()
		if !sampled {
			st.root.sc = trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid})
			st.span = &st.root
			return
		}
		ctx = t.roots.WithTraceID(ctx, tid)
	}
	st.spanCtx, st.span = t.tracer.Start(ctx, st.route.spanName(r.Method), serverSpan...)
	if !st.span.IsRecording() {
		return
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	// One SetAttributes per span and end: each call grows the span's slice.
	a := make([]attribute.KeyValue, 0, 13)
	a = append(a, methodAttr(r.Method), semconv.URLPath(r.URL.Path), semconv.URLScheme(scheme),
		semconv.ClientAddress(st.client), semconv.ServerAddress(hostOnly(r.Host)),
		semconv.NetworkProtocolVersion(protocolVersion(r)), semconv.UserAgentOriginal(r.UserAgent()),
		attrRequestID.String(st.id))
	if methodIndex(r.Method) == len(knownMethods) {
		a = append(a, semconv.HTTPRequestMethodOriginal(r.Method))
	}
	if st.route != nil {
		a = append(a, attrPool.String(st.route.pool.name), attrRoute.String(st.route.name))
	}
	if st.grpc != nil {
		a = append(a, semconv.RPCSystemNameGRPC, semconv.RPCMethod(trimSlash(r.URL.Path)))
	}
	st.span.SetAttributes(a...)
}

// endServer ends the request's server span with what the request came to.
func (st *reqState) endServer(policy string) {
	sp := st.span
	if sp.IsRecording() {
		a := make([]attribute.KeyValue, 0, 6)
		a = append(a, semconv.HTTPResponseStatusCode(st.status), attrPolicy.String(policy), attrAttempts.Int(st.attempts))
		if st.rejected != "" {
			a = append(a, attrReject.String(st.rejected))
		}
		if st.backend != nil {
			a = append(a, attrBackend.String(st.backend.URL()))
		}
		if st.status >= 500 {
			a = append(a, semconv.ErrorTypeKey.String(strconv.Itoa(st.status)))
			sp.SetStatus(codes.Error, "")
		}
		sp.SetAttributes(a...)
	}
	sp.End()
}

// traceAttempt starts the attempt's client span under the server span and
// writes its traceparent into the request to the backend. It returns a nil
// span when the request is not sampled, and with tracing off, when it
// changes nothing.
func (st *reqState) traceAttempt(req *http.Request, up *upstream, h *backendactor.Handle) (*http.Request, trace.Span) {
	t := st.live.Tracing
	if t == nil || st.span == nil {
		return req, nil
	}
	if st.attempts > 1 {
		// req is this attempt's own shallow copy, but its header map is
		// the first attempt's, which that attempt's transport may still read.
		req.Header = req.Header.Clone()
	}
	if !st.span.IsRecording() {
		// Not sampled: a client span would not be either (its parent
		// decides), so the backend is told the server span's ids, which
		// carry the trace id and the decision just as well, for half the work.
		st.setTraceparent(req.Header, st.span.SpanContext())
		return req, nil
	}
	ctx, sp := t.tracer.Start(st.spanCtx, spanMethod(req.Method), clientSpan...)
	t.prop.Inject(ctx, headerCarrier(req.Header))
	port, _ := strconv.Atoi(up.target.Port())
	a := make([]attribute.KeyValue, 0, 7)
	a = append(a, methodAttr(req.Method), semconv.ServerAddress(up.target.Hostname()), semconv.ServerPort(port),
		semconv.URLFull(up.target.Scheme+"://"+up.target.Host+req.URL.EscapedPath()),
		attrBackend.String(h.URL()), attrAttempt.Int(st.attempts))
	if st.attempts > 1 {
		a = append(a, semconv.HTTPRequestResendCount(st.attempts-1))
	}
	sp.SetAttributes(a...)
	return req, sp
}

// setTraceparent writes sc as a W3C traceparent (version 00) to the
// request to the backend, in one allocation, where the propagator's Inject
// makes four. It is what lbd's propagator (trace context and baggage, see
// package tracing) writes for an unsampled span: that span's tracestate and
// baggage are the caller's, which reach the backend in the forwarded headers
// as they came.
func (st *reqState) setTraceparent(h http.Header, sc trace.SpanContext) {
	if !sc.IsValid() {
		return
	}
	const digits = "0123456789abcdef"
	var b [55]byte
	copy(b[:], "00-")
	tid, sid := sc.TraceID(), sc.SpanID()
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	b[52] = '-'
	f := sc.TraceFlags() & (trace.FlagsSampled | trace.FlagsRandom)
	b[53], b[54] = digits[f>>4], digits[f&0xf]
	st.setHeader(h, "Traceparent", hdrTraceparent, string(b[:]))
}

// attemptFailed ends an attempt's client span that got no response.
func attemptFailed(sp trace.Span, err error) {
	if sp == nil {
		return
	}
	if sp.IsRecording() {
		sp.SetAttributes(semconv.ErrorTypeKey.String(errorType(err)))
		sp.SetStatus(codes.Error, err.Error())
	}
	sp.End()
}

// attemptAnswered ends an attempt's client span once its response is over:
// in error for a 5xx and for any outcome lbd counts against the backend (a
// body broken off, a gRPC status such as UNAVAILABLE).
func attemptAnswered(sp trace.Span, resp *http.Response, o backendactor.Outcome, complete bool) {
	if sp == nil {
		return
	}
	if sp.IsRecording() {
		a := make([]attribute.KeyValue, 0, 3)
		a = append(a, semconv.HTTPResponseStatusCode(resp.StatusCode))
		if isGRPC(resp.Header) {
			if status, ok := grpcStatus(resp, complete); ok {
				a = append(a, semconv.RPCResponseStatusCode(grpcCodeName(status)))
			}
		}
		switch {
		case resp.StatusCode >= 500:
			a = append(a, semconv.ErrorTypeKey.String(strconv.Itoa(resp.StatusCode)))
			sp.SetStatus(codes.Error, "")
		case o == backendactor.ServerError || o == backendactor.GatewayError:
			a = append(a, semconv.ErrorTypeKey.String("_OTHER"))
			sp.SetStatus(codes.Error, "the response failed")
		}
		sp.SetAttributes(a...)
	}
	sp.End()
}

// headerCarrier is propagation.HeaderCarrier without its cost on the request
// path: the propagators name their headers in lower case, which http.Header
// canonicalises with an allocation on every call, so the three they use are
// mapped to their canonical form here.
type headerCarrier http.Header

func canonicalKey(k string) string {
	switch k {
	case "traceparent":
		return "Traceparent"
	case "tracestate":
		return "Tracestate"
	case "baggage":
		return "Baggage"
	}
	return http.CanonicalHeaderKey(k)
}

func (c headerCarrier) Get(k string) string {
	if v := c[canonicalKey(k)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Values gives the baggage propagator every baggage header, as
// propagation.HeaderCarrier does.
func (c headerCarrier) Values(k string) []string { return c[canonicalKey(k)] }

func (c headerCarrier) Set(k, v string) { c[canonicalKey(k)] = []string{v} }

func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// traceIDs are the trace and span ids for the access log: lbd's server
// span's when tracing is on, else the trace id of an incoming traceparent.
func (st *reqState) traceIDs(r *http.Request, l *accessLine) {
	if st.span != nil {
		l.span = st.span.SpanContext()
		return
	}
	l.traceID = traceID(r.Header.Get("Traceparent"))
}

// sampledTraceID is the trace id for an exemplar: set only when the
// request's span is recorded, so that the exemplar leads to a trace that
// exists.
func (st *reqState) sampledTraceID() (string, bool) {
	if st.span == nil || !st.span.SpanContext().IsSampled() {
		return "", false
	}
	return st.span.SpanContext().TraceID().String(), true
}

func methodAttr(m string) attribute.KeyValue {
	if methodIndex(m) == len(knownMethods) {
		return semconv.HTTPRequestMethodKey.String("_OTHER")
	}
	return semconv.HTTPRequestMethodKey.String(m)
}

func spanMethod(m string) string {
	if methodIndex(m) == len(knownMethods) {
		return "HTTP"
	}
	return m
}

func protocolVersion(r *http.Request) string {
	switch r.ProtoMajor {
	case 2:
		return "2"
	case 3:
		return "3"
	}
	return "1." + strconv.Itoa(r.ProtoMinor)
}

func trimSlash(p string) string {
	if len(p) > 0 && p[0] == '/' {
		return p[1:]
	}
	return p
}

// errorType names, with low cardinality, why an attempt got no response.
func errorType(err error) string {
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case isTimeout(err):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection_refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection_reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection_closed"
	}
	return "_OTHER"
}

// grpcCodeNames are gRPC's status names by code, as rpc.response.status_code
// carries them.
var grpcCodeNames = [...]string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
	"PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
	"UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
}

func grpcCodeName(status string) string {
	if n, err := strconv.Atoi(status); err == nil && n >= 0 && n < len(grpcCodeNames) {
		return grpcCodeNames[n]
	}
	return status
}
