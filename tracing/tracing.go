// Package tracing builds lbd's OpenTelemetry tracer provider from the
// tracing section and the OTEL_* environment: an OTLP exporter (HTTP or
// gRPC), the SDK's batch span processor behind a counter of every span's
// fate, parent-based sampling (a sampled caller is always joined, new
// traces are kept at the sample ratio), and a resource naming the service
// and its version.
//
// It owns no goroutine of its own beyond the SDK's batch processor. The
// daemon builds a Provider at start and on a reload whose settings differ
// (Resolve, New), hands its TracerProvider and Propagator to the data plane
// (package proxy, which imports only the OpenTelemetry API), and shuts the
// old one down. No global of OpenTelemetry's is set: two daemons in one
// process (the tests) trace independently.
package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Options are what New needs beside the settings.
type Options struct {
	Version string       // service.version
	Logger  *slog.Logger // export failures, at most one line per 30s
	Metrics *Metrics     // where spans are counted; nil counts nowhere
	// BatchTimeout is the longest a span waits in the queue before it is
	// sent; 0 keeps the SDK's (5s, or OTEL_BSP_SCHEDULE_DELAY).
	BatchTimeout time.Duration
}

// Provider is one tracer provider with its exporter.
type Provider struct {
	settings Settings
	sdk      *sdktrace.TracerProvider
	counter  *counter
	roots    *Roots
}

// propagator is W3C trace context and baggage: stateless, shared.
var propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// New builds a provider for s. It opens no connection: the exporter dials
// when it first sends, so a collector that is down costs requests nothing
// (its spans are counted as dropped).
func New(s Settings, o Options) (*Provider, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	exp, err := newExporter(s)
	if err != nil {
		return nil, err
	}
	res, err := resource.New(context.Background(),
		resource.WithFromEnv(), resource.WithTelemetrySDK(), resource.WithHost(),
		resource.WithAttributes(semconv.ServiceName(s.ServiceName), semconv.ServiceVersion(o.Version)))
	if err != nil { // a malformed OTEL_RESOURCE_ATTRIBUTES: keep what parsed, as the SDK does
		o.Logger.Warn("tracing: resource attributes", "err", err)
	}
	c := &counter{limit: int64(s.MaxQueue), m: o.Metrics}
	bsp := []sdktrace.BatchSpanProcessorOption{
		sdktrace.WithMaxQueueSize(s.MaxQueue), sdktrace.WithMaxExportBatchSize(min(sdktrace.DefaultMaxExportBatchSize, s.MaxQueue)),
	}
	if o.BatchTimeout > 0 {
		bsp = append(bsp, sdktrace.WithBatchTimeout(o.BatchTimeout))
	}
	c.next = sdktrace.NewBatchSpanProcessor(&exporter{SpanExporter: exp, c: c, log: o.Logger}, bsp...)
	roots := NewRoots(s.SampleRatio)
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sdktrace.ParentBased(roots.ratio)),
		sdktrace.WithIDGenerator(idGenerator{}),
		sdktrace.WithSpanProcessor(c),
		sdktrace.WithResource(res),
	)
	return &Provider{settings: s, sdk: tp, counter: c, roots: roots}, nil
}

func newExporter(s Settings) (*otlptrace.Exporter, error) {
	switch s.Protocol {
	case "grpc":
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpointURL(s.URL)}
		if len(s.Headers) > 0 {
			opts = append(opts, otlptracegrpc.WithHeaders(s.Headers))
		}
		return otlptracegrpc.New(context.Background(), opts...) // dials lazily (grpc.NewClient)
	case "http/protobuf", "http/json":
		opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(s.URL)}
		if len(s.Headers) > 0 {
			opts = append(opts, otlptracehttp.WithHeaders(s.Headers))
		}
		if s.Protocol == "http/json" {
			opts = append(opts, otlptracehttp.WithEncoding(otlptracehttp.EncodingJSON))
		}
		return otlptracehttp.New(context.Background(), opts...)
	}
	return nil, fmt.Errorf("tracing: unknown protocol %q", s.Protocol)
}

// Settings returns the settings p was built from.
func (p *Provider) Settings() Settings { return p.settings }

// TracerProvider is what the data plane starts spans from.
func (p *Provider) TracerProvider() trace.TracerProvider { return p.sdk }

// Propagator reads and writes traceparent, tracestate and baggage.
func (p *Provider) Propagator() propagation.TextMapPropagator { return propagator }

// Roots decides the sampling of requests that bring no trace (roots.go).
func (p *Provider) Roots() *Roots { return p.roots }

// Open returns the spans started and not ended yet: the requests in
// flight that this provider traces.
func (p *Provider) Open() int64 { return p.counter.open.Load() }

// ForceFlush sends every ended span now.
func (p *Provider) ForceFlush(ctx context.Context) error { return p.sdk.ForceFlush(ctx) }

// Shutdown sends what is queued until ctx ends, then stops the exporter.
// Spans ended after it, and spans it could not send, are counted as
// dropped (reason shutdown).
func (p *Provider) Shutdown(ctx context.Context) error { return p.sdk.Shutdown(ctx) }
