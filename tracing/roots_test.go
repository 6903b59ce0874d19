package tracing

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestRootsSampleTheRatio: the share of new traces Draw samples is the
// ratio, and each drawn id is new.
func TestRootsSampleTheRatio(t *testing.T) {
	for _, ratio := range []float64{0, 0.01, 0.25, 1} {
		r := &Roots{ratio: sdktrace.TraceIDRatioBased(ratio)}
		const n = 40_000
		sampled, seen := 0, map[[16]byte]bool{}
		for range n {
			tid, sid, ok := r.Draw()
			require.True(t, tid.IsValid() && sid.IsValid())
			require.False(t, seen[tid], "trace id drawn twice")
			seen[tid] = true
			if ok {
				sampled++
			}
		}
		require.InDelta(t, ratio, float64(sampled)/n, 0.01, "ratio %v", ratio)
	}
}

// TestSampledRootsKeepTheirDrawnTraceID: a trace Draw sampled becomes the
// SDK's root span with the drawn trace id, and the SDK's own sampler, asked
// again on that id, agrees: every root Draw samples is recorded, so the share
// recorded is the ratio and not its square.
func TestSampledRootsKeepTheirDrawnTraceID(t *testing.T) {
	ratio := sdktrace.TraceIDRatioBased(0.3)
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(ratio)),
		sdktrace.WithIDGenerator(idGenerator{}), sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	r := &Roots{ratio: ratio}
	tracer := tp.Tracer("test")
	var want []string
	for range 1000 {
		tid, _, ok := r.Draw()
		if !ok {
			continue
		}
		want = append(want, tid.String())
		_, sp := tracer.Start(r.WithTraceID(context.Background(), tid), "root")
		require.True(t, sp.IsRecording())
		require.Equal(t, tid, sp.SpanContext().TraceID())
		sp.End()
	}
	require.NotEmpty(t, want)
	var got []string
	for _, s := range sr.Ended() {
		got = append(got, s.SpanContext().TraceID().String())
		require.False(t, s.Parent().IsValid(), "a root span")
	}
	require.Equal(t, want, got)

	// Without a drawn id the generator draws its own, as the SDK's does.
	_, sp := tracer.Start(context.Background(), "other")
	require.True(t, sp.SpanContext().TraceID().IsValid())
	sp.End()
}
