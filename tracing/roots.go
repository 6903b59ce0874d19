package tracing

import (
	"context"
	"encoding/binary"
	"math/rand/v2"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Roots decides the sampling of a request that brought no trace before the
// SDK is asked, with the SDK's own ratio sampler, so that the requests it
// drops (1 - sample_ratio of them) never start an SDK span: at ratio 0.01
// the SDK's span start was half of a request's tracing cost. The trace id
// drawn for the decision is the one the SDK uses when the request is
// sampled (idGenerator), so the decision stays the one TraceIDRatioBased
// makes on that id, and the share sampled is sample_ratio.
type Roots struct {
	ratio sdktrace.Sampler
}

// NewRoots returns the root sampler of sample_ratio ratio. Its sampled
// roots keep their drawn trace id only in an SDK built with this package's
// id generator (New does so).
func NewRoots(ratio float64) *Roots { return &Roots{ratio: sdktrace.TraceIDRatioBased(ratio)} }

// Draw returns the ids of a new trace and whether it is sampled.
func (r *Roots) Draw() (trace.TraceID, trace.SpanID, bool) {
	tid, sid := newIDs()
	d := r.ratio.ShouldSample(sdktrace.SamplingParameters{ParentContext: context.Background(), TraceID: tid})
	return tid, sid, d.Decision == sdktrace.RecordAndSample
}

// WithTraceID returns ctx carrying tid as the trace id for the SDK's next
// root span in it.
func (r *Roots) WithTraceID(ctx context.Context, tid trace.TraceID) context.Context {
	return context.WithValue(ctx, drawnKey{}, tid)
}

type drawnKey struct{}

// idGenerator is the SDK's random one (math/rand/v2, as the SDK's default
// is), but a root span whose context carries a trace id drawn by Roots gets
// that id.
type idGenerator struct{}

func (idGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if tid, ok := ctx.Value(drawnKey{}).(trace.TraceID); ok && tid.IsValid() {
		return tid, newSpanID()
	}
	return newIDs()
}

func (idGenerator) NewSpanID(context.Context, trace.TraceID) trace.SpanID { return newSpanID() }

func newIDs() (trace.TraceID, trace.SpanID) {
	var tid trace.TraceID
	for !tid.IsValid() {
		binary.NativeEndian.PutUint64(tid[:8], rand.Uint64())
		binary.NativeEndian.PutUint64(tid[8:], rand.Uint64())
	}
	return tid, newSpanID()
}

func newSpanID() trace.SpanID {
	var sid trace.SpanID
	for !sid.IsValid() {
		binary.NativeEndian.PutUint64(sid[:], rand.Uint64())
	}
	return sid
}
