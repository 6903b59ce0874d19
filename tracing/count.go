package tracing

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Metrics count what happened to the spans lbd recorded. They outlive any
// one Provider: a reload that builds a new provider keeps counting into the
// same series.
type Metrics struct {
	exported     prometheus.Counter
	queueFull    prometheus.Counter
	exportFailed prometheus.Counter
	shutdown     prometheus.Counter
}

// Reasons a span is dropped (lbd_tracing_spans_dropped_total{reason}).
const (
	DropQueueFull    = "queue_full"    // the export queue was full when the span ended
	DropExportFailed = "export_failed" // the collector refused it or could not be reached
	DropShutdown     = "shutdown"      // its provider stopped (reload or exit) before it was sent
)

// NewMetrics registers the span counters with reg (nil registers nowhere).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lbd_tracing_spans_dropped_total",
		Help: "Sampled spans that never reached the collector, by reason (queue_full, export_failed, shutdown).",
	}, []string{"reason"})
	exported := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "lbd_tracing_spans_exported_total", Help: "Spans the collector accepted.",
	})
	m := &Metrics{
		exported:     exported,
		queueFull:    dropped.WithLabelValues(DropQueueFull),
		exportFailed: dropped.WithLabelValues(DropExportFailed),
		shutdown:     dropped.WithLabelValues(DropShutdown),
	}
	if reg != nil {
		reg.MustRegister(dropped, exported)
	}
	return m
}

// counter sits in front of the SDK's batch processor and counts every
// sampled span to its end: exported, or dropped for a reason. The batch
// processor drops silently when its queue is full, so the counter keeps
// its own bound: pending, the spans handed on and not yet through the
// exporter, never exceeds the queue's capacity; a span beyond it is
// dropped here, and counted. The batch processor's queue therefore never
// overflows. Two atomic adds per sampled span.
type counter struct {
	next  sdktrace.SpanProcessor
	limit int64
	m     *Metrics

	open    atomic.Int64 // started and not ended
	pending atomic.Int64 // ended, handed to next, not yet exported or failed
	closed  atomic.Bool  // Shutdown counted what was left: later exports are not counted again
}

func (c *counter) OnStart(parent context.Context, s sdktrace.ReadWriteSpan) {
	c.open.Add(1)
	c.next.OnStart(parent, s)
}

func (c *counter) OnEnd(s sdktrace.ReadOnlySpan) {
	c.open.Add(-1)
	if !s.SpanContext().IsSampled() {
		return
	}
	if c.pending.Add(1) > c.limit {
		c.pending.Add(-1)
		c.m.queueFull.Inc()
		return
	}
	c.next.OnEnd(s)
}

func (c *counter) ForceFlush(ctx context.Context) error { return c.next.ForceFlush(ctx) }

// Shutdown flushes the queue, then counts what will never be sent: spans
// still open (their requests outlived the provider) and spans the flush
// did not get out in time.
func (c *counter) Shutdown(ctx context.Context) error {
	err := c.next.Shutdown(ctx)
	c.closed.Store(true)
	lost := c.open.Swap(0) + c.pending.Swap(0)
	if lost > 0 {
		c.m.shutdown.Add(float64(lost))
	}
	return err
}

// exporter counts each batch's fate and settles the counter's pending
// spans. A failed batch is counted and logged here (at most once per
// logEvery), and not passed on: the batch processor would only hand the
// error to OpenTelemetry's global error handler, which lbd leaves alone.
type exporter struct {
	sdktrace.SpanExporter
	c       *counter
	log     *slog.Logger
	lastLog atomic.Int64 // unix nanoseconds of the last failure logged
	failed  atomic.Int64 // spans failed since the last log line
}

const logEvery = 30 * time.Second

func (e *exporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	n := int64(len(spans))
	if e.c.closed.Load() { // a flush that outlived Shutdown's deadline: these were counted as lost
		return nil
	}
	e.c.pending.Add(-n)
	if err == nil {
		e.c.m.exported.Add(float64(n))
		return nil
	}
	e.c.m.exportFailed.Add(float64(n))
	failed := e.failed.Add(n)
	now, last := time.Now().UnixNano(), e.lastLog.Load()
	if now-last >= int64(logEvery) && e.lastLog.CompareAndSwap(last, now) {
		e.failed.Add(-failed)
		e.log.Warn("tracing: spans not exported", "spans", failed, "err", err)
	}
	return nil
}
