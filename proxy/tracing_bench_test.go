package proxy

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/lbd/lbd/backendactor"
	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/tracing"
)

// BenchmarkTracingSpans is the tracing work of one proxied request, alone:
// the server span (with the traceparent read), one attempt's client span
// (with the traceparent written) and both ends, through the SDK's batch
// processor to an exporter that drops the batches. "off" is the nil check
// that a request pays with tracing off; "caller" is a request that arrives
// with a sampled traceparent.
//
//	go test -run '^$' -bench TracingSpans -benchmem -count 6 ./proxy/
func BenchmarkTracingSpans(b *testing.B) {
	h := testBackend()
	defer func() { h.Stop(); <-h.Done() }()
	target, _ := url.Parse("http://127.0.0.1:8081")
	up := &upstream{target: target}
	pool := NewPool(config.DefaultPool, noPicker{}, PoolSettings{})
	rt := &route{pool: pool, spanNames: newSpanNames(pool.name)}
	for _, v := range []struct {
		name   string
		ratio  float64
		off    bool
		roots  bool // new traces decided by tracing.Roots before the SDK
		caller string
	}{
		{name: "off", off: true},
		{name: "ratio=0", ratio: 0},
		{name: "ratio=0.01", ratio: 0.01},
		{name: "ratio=0.01/roots", ratio: 0.01, roots: true},
		{name: "ratio=1", ratio: 1},
		{name: "caller-sampled", ratio: 0, caller: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
	} {
		b.Run(v.name, func(b *testing.B) {
			live := &Live{}
			if !v.off {
				tp := sdktrace.NewTracerProvider(
					sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(v.ratio))),
					sdktrace.WithBatcher(tracetest.NewNoopExporter()))
				defer func() { _ = tp.Shutdown(b.Context()) }()
				var roots RootSampler
				if v.roots {
					roots = tracing.NewRoots(v.ratio)
				}
				live.Tracing = NewTracing(tp, propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}), roots)
			}
			b.ReportAllocs()
			cpu0 := processCPU()
			b.RunParallel(func(pb *testing.PB) {
				in := httptest.NewRequest(http.MethodGet, "/items/1", nil)
				if v.caller != "" {
					in.Header.Set("Traceparent", v.caller)
				}
				out := in.Clone(in.Context())
				resp := &http.Response{StatusCode: http.StatusOK, Header: http.Header{}}
				for pb.Next() {
					st := heapState(live, rt)
					if t := live.Tracing; t != nil {
						t.startServer(in, st)
					}
					_, sp := st.traceAttempt(out, up, h)
					attemptAnswered(sp, resp, backendactor.Success, true)
					if st.span != nil {
						st.endServer("rr")
					}
				}
			})
			// CPU of the whole process, the batch processor's goroutine
			// included, and steadier than ns/op on a shared machine.
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// heapState is a request's state on the heap, as ServeHTTP's is (it is the
// request's context), so that no variant's B/op depends on whether the
// compiler could keep it on the stack.
//
//go:noinline
func heapState(live *Live, rt *route) *reqState {
	return &reqState{live: live, route: rt, client: "127.0.0.1", id: "x", status: http.StatusOK, attempts: 1}
}
