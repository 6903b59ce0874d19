package tracing

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"go.uber.org/goleak"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/internal/otlpsink"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func settingsFor(t *testing.T, c *config.Tracing) Settings {
	t.Helper()
	s, on, err := Resolve(c, func(string) string { return "" })
	require.NoError(t, err)
	require.True(t, on)
	return s
}

func newProvider(t *testing.T, s Settings, m *Metrics) *Provider {
	t.Helper()
	p, err := New(s, Options{Version: "v1.2.3", Logger: slog.New(slog.DiscardHandler), Metrics: m, BatchTimeout: 10 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Shutdown(ctx)
	})
	return p
}

func ctxTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestExportsOverEveryProtocol sends spans to a real receiver over
// OTLP/HTTP protobuf and OTLP/gRPC: the receiver decodes them, with the
// resource (service.name and version), the configured headers and the
// parent/child link intact.
func TestExportsOverEveryProtocol(t *testing.T) {
	for _, proto := range []string{"http/protobuf", "grpc"} {
		t.Run(proto, func(t *testing.T) {
			start := otlpsink.StartHTTP
			if proto == "grpc" {
				start = otlpsink.StartGRPC
			}
			sink, err := start()
			require.NoError(t, err)
			defer sink.Close()
			m := NewMetrics(prometheus.NewRegistry())
			p := newProvider(t, settingsFor(t, &config.Tracing{Endpoint: sink.URL(), Protocol: proto, ServiceName: "lbd-test",
				Headers: map[string]string{"Authorization": "Bearer t0ken"}}), m)

			tr := p.TracerProvider().Tracer("test")
			ctx, parent := tr.Start(context.Background(), "GET api", trace.WithSpanKind(trace.SpanKindServer))
			_, child := tr.Start(ctx, "GET", trace.WithSpanKind(trace.SpanKindClient))
			child.End()
			parent.End()

			spans, err := sink.WaitFor(ctxTimeout(t), 2)
			require.NoError(t, err)
			require.Len(t, spans, 2)
			byName := map[string]otlpsink.Span{spans[0].Name: spans[0], spans[1].Name: spans[1]}
			srv, cli := byName["GET api"], byName["GET"]
			require.Equal(t, tracepb.Span_SPAN_KIND_SERVER, srv.Kind)
			require.Equal(t, tracepb.Span_SPAN_KIND_CLIENT, cli.Kind)
			require.Equal(t, parent.SpanContext().TraceID().String(), srv.TraceID)
			require.Equal(t, srv.TraceID, cli.TraceID)
			require.Equal(t, srv.SpanID, cli.Parent)
			require.Empty(t, srv.Parent)
			require.Equal(t, "lbd-test", srv.Resource["service.name"])
			require.Equal(t, "v1.2.3", srv.Resource["service.version"])
			hdr := sink.Headers()[0]
			auth := hdr["Authorization"]
			if proto == "grpc" {
				auth = hdr["authorization"] // gRPC metadata keys are lower case
			}
			require.Equal(t, []string{"Bearer t0ken"}, auth)
			require.Eventually(t, func() bool { return testutil.ToFloat64(m.exported) == 2 }, 5*time.Second, time.Millisecond)
		})
	}
}

// TestParentBasedSampling: at ratio 0 no new trace is recorded, yet a span
// whose caller sampled its trace is, and one whose caller did not is not.
func TestParentBasedSampling(t *testing.T) {
	sink, err := otlpsink.StartHTTP()
	require.NoError(t, err)
	defer sink.Close()
	zero := 0.0
	p := newProvider(t, settingsFor(t, &config.Tracing{Endpoint: sink.URL(), SampleRatio: &zero}), nil)
	tr := p.TracerProvider().Tracer("test")

	_, s := tr.Start(context.Background(), "new trace")
	require.False(t, s.IsRecording())
	require.True(t, s.SpanContext().IsValid(), "an unsampled span still has ids to pass on")
	s.End()

	remote := func(flags trace.TraceFlags) context.Context {
		sc := trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}, TraceFlags: flags, Remote: true,
		})
		return trace.ContextWithRemoteSpanContext(context.Background(), sc)
	}
	_, s = tr.Start(remote(0), "unsampled caller")
	require.False(t, s.IsRecording())
	s.End()
	_, s = tr.Start(remote(trace.FlagsSampled), "sampled caller")
	require.True(t, s.IsRecording())
	s.End()

	spans, err := sink.WaitFor(ctxTimeout(t), 1)
	require.NoError(t, err)
	require.NoError(t, p.ForceFlush(ctxTimeout(t)))
	spans = sink.Spans()
	require.Len(t, spans, 1)
	require.Equal(t, "sampled caller", spans[0].Name)
	require.Equal(t, trace.TraceID{1, 2, 3}.String(), spans[0].TraceID)
	require.Equal(t, trace.SpanID{4, 5, 6}.String(), spans[0].Parent)
}

// TestDroppedSpansAreCounted: every span that does not reach the collector
// is counted by reason. A collector that is not there fails each export; a
// stalled one fills the queue, beyond which spans are dropped at once; and
// spans still open or queued when the provider stops are lost.
func TestDroppedSpansAreCounted(t *testing.T) {
	t.Run("export_failed", func(t *testing.T) {
		m := NewMetrics(prometheus.NewRegistry())
		p := newProvider(t, settingsFor(t, &config.Tracing{Endpoint: "http://" + closedPort(t)}), m)
		tr := p.TracerProvider().Tracer("test")
		for range 5 {
			_, s := tr.Start(context.Background(), "x")
			s.End()
		}
		require.NoError(t, p.ForceFlush(ctxTimeout(t)))
		require.Equal(t, 5.0, testutil.ToFloat64(m.exportFailed))
		require.Equal(t, 0.0, testutil.ToFloat64(m.exported))
		require.Equal(t, 0.0, testutil.ToFloat64(m.queueFull))
	})
	t.Run("queue_full and shutdown", func(t *testing.T) {
		sink, err := otlpsink.StartHTTP()
		require.NoError(t, err)
		defer sink.Close()
		sink.Stall()
		m := NewMetrics(prometheus.NewRegistry())
		s := settingsFor(t, &config.Tracing{Endpoint: sink.URL()})
		s.MaxQueue = 4
		p := newProvider(t, s, m)
		tr := p.TracerProvider().Tracer("test")
		for range 20 {
			_, s := tr.Start(context.Background(), "x")
			s.End()
		}
		// Nothing returns from the stalled collector, so the queue holds
		// exactly 4 spans and the other 16 were dropped when they ended.
		require.Equal(t, 16.0, testutil.ToFloat64(m.queueFull))
		_, open := tr.Start(context.Background(), "still running")
		require.Equal(t, int64(1), p.Open())

		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		require.Error(t, p.Shutdown(ctx), "the stalled collector holds the flush past its deadline")
		open.End()
		require.Equal(t, 5.0, testutil.ToFloat64(m.shutdown), "4 queued and 1 open span are lost")
		require.Equal(t, 0.0, testutil.ToFloat64(m.exported))
		sink.Release()
	})
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}
