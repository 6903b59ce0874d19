// Package otlpsink is a real OTLP trace receiver for tests: it serves the
// OTLP/HTTP protobuf endpoint (POST /v1/traces) or the OTLP/gRPC trace
// service on 127.0.0.1, decodes each ExportTraceServiceRequest with the
// OpenTelemetry protobuf definitions, and keeps the spans in a form a test
// can assert on. Only tests import it, so it is not in the lbd binary.
//
// Each Sink owns its server; Close stops it. Stall makes it hold every
// export until Release, which is how a test fills lbd's export queue.
package otlpsink

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// Span is one received span. IDs are lower-case hex; Parent is "" for a
// root span. Attrs hold strings, int64s, float64s and bools.
type Span struct {
	TraceID, SpanID, Parent string
	Name                    string
	Kind                    tracepb.Span_SpanKind
	Start, End              time.Time
	Attrs                   map[string]any
	Status                  tracepb.Status_StatusCode
	StatusMessage           string
	Resource                map[string]any
}

// Sink is a running receiver.
type Sink struct {
	url  string
	stop func()

	mu      sync.Mutex
	spans   []Span
	headers []map[string][]string // each export's HTTP headers or gRPC metadata
	changed chan struct{}         // closed and replaced whenever spans arrive
	stall   chan struct{}         // non-nil: exports wait until it is closed
}

// StartHTTP starts an OTLP/HTTP receiver; URL is its base URL, as
// OTEL_EXPORTER_OTLP_ENDPOINT would name it.
func StartHTTP() (*Sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Sink{url: "http://" + ln.Addr().String(), changed: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", s.serveHTTP)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	s.stop = func() { s.Release(); _ = srv.Close() }
	return s, nil
}

// StartGRPC starts an OTLP/gRPC receiver; URL is "http://127.0.0.1:PORT"
// (no TLS).
func StartGRPC() (*Sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Sink{url: "http://" + ln.Addr().String(), changed: make(chan struct{})}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, grpcService{s: s})
	go func() { _ = srv.Serve(ln) }()
	s.stop = func() { s.Release(); srv.Stop() }
	return s, nil
}

// URL is the receiver's base URL.
func (s *Sink) URL() string { return s.url }

// Close stops the receiver.
func (s *Sink) Close() { s.stop() }

// Stall makes exports wait (unanswered) until Release or Close.
func (s *Sink) Stall() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stall == nil {
		s.stall = make(chan struct{})
	}
}

// Release lets stalled exports through.
func (s *Sink) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stall != nil {
		close(s.stall)
		s.stall = nil
	}
}

// Spans returns the spans received so far, in arrival order.
func (s *Sink) Spans() []Span {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Span(nil), s.spans...)
}

// Headers returns the headers (or gRPC metadata) of each export so far.
func (s *Sink) Headers() []map[string][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string][]string(nil), s.headers...)
}

// WaitFor waits until at least n spans have arrived or ctx ends, and
// returns the spans received.
func (s *Sink) WaitFor(ctx context.Context, n int) ([]Span, error) {
	for {
		s.mu.Lock()
		got, changed := len(s.spans), s.changed
		s.mu.Unlock()
		if got >= n {
			return s.Spans(), nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return s.Spans(), fmt.Errorf("otlpsink: %d of %d spans: %w", got, n, ctx.Err())
		}
	}
}

func (s *Sink) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		http.Error(w, "want application/x-protobuf, got "+ct, http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		http.Error(w, "not an ExportTraceServiceRequest: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := s.receive(r.Context(), &req, r.Header); err != nil {
		return // the client gave up while stalled
	}
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

type grpcService struct {
	coltracepb.UnimplementedTraceServiceServer
	s *Sink
}

func (g grpcService) Export(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if err := g.s.receive(ctx, req, md); err != nil {
		return nil, err
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// receive waits out a stall, then records the request's spans.
func (s *Sink) receive(ctx context.Context, req *coltracepb.ExportTraceServiceRequest, hdr map[string][]string) error {
	s.mu.Lock()
	stall := s.stall
	s.mu.Unlock()
	if stall != nil {
		select {
		case <-stall:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var spans []Span
	for _, rs := range req.GetResourceSpans() {
		res := attrs(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				spans = append(spans, decode(sp, res))
			}
		}
	}
	if len(spans) == 0 {
		return errors.New("otlpsink: an export without spans")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.spans = append(s.spans, spans...)
	s.headers = append(s.headers, hdr)
	close(s.changed)
	s.changed = make(chan struct{})
	return nil
}

func decode(sp *tracepb.Span, res map[string]any) Span {
	return Span{
		TraceID: hex.EncodeToString(sp.GetTraceId()), SpanID: hex.EncodeToString(sp.GetSpanId()),
		Parent: hex.EncodeToString(sp.GetParentSpanId()), Name: sp.GetName(), Kind: sp.GetKind(),
		Start: time.Unix(0, int64(sp.GetStartTimeUnixNano())), End: time.Unix(0, int64(sp.GetEndTimeUnixNano())),
		Attrs: attrs(sp.GetAttributes()), Status: sp.GetStatus().GetCode(), StatusMessage: sp.GetStatus().GetMessage(),
		Resource: res,
	}
}

func attrs(kvs []*commonpb.KeyValue) map[string]any {
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		switch v := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.GetKey()] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = v.IntValue
		case *commonpb.AnyValue_DoubleValue:
			m[kv.GetKey()] = v.DoubleValue
		case *commonpb.AnyValue_BoolValue:
			m[kv.GetKey()] = v.BoolValue
		default:
			m[kv.GetKey()] = kv.GetValue().String()
		}
	}
	return m
}
