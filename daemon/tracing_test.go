package daemon

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"go.uber.org/goleak"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/internal/otlpsink"
)

// traceBackends are plain HTTP backends that record the traceparent of
// each proxied request; the first failFirst requests (over all of them)
// are answered 502.
type traceBackends struct {
	urls      []string
	got       chan string
	failFirst atomic.Int64
}

func startTraceBackends(t *testing.T, n int) *traceBackends {
	t.Helper()
	b := &traceBackends{got: make(chan string, 256)}
	for range n {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" {
				return
			}
			b.got <- r.Header.Get("Traceparent")
			if b.failFirst.Add(-1) >= 0 {
				w.WriteHeader(http.StatusBadGateway)
				return
			}
			_, _ = io.WriteString(w, "ok")
		}))
		t.Cleanup(srv.Close)
		b.urls = append(b.urls, srv.URL)
	}
	return b
}

// tracedLBD runs lbd over b, with the tracing section set by tracing (nil
// leaves it to the environment). Spans leave within 10ms of their end.
func tracedLBD(t *testing.T, b *traceBackends, tracing *config.Tracing, mutate ...func(*config.Config)) *testLBD {
	t.Helper()
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "10") // the SDK's own variable, read from the environment
	return startLBD(t, nil, func(c *config.Config) {
		c.Health.Disabled = true
		for _, u := range b.urls {
			c.Backends = append(c.Backends, config.Backend{URL: u, Weight: 1, Protocol: "http1"})
		}
		c.Tracing = tracing
		for _, m := range mutate {
			m(c)
		}
	})
}

func ratio(f float64) *float64 { return &f }

func startSink(t *testing.T, grpc bool) *otlpsink.Sink {
	t.Helper()
	start := otlpsink.StartHTTP
	if grpc {
		start = otlpsink.StartGRPC
	}
	s, err := start()
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

func waitSpans(t *testing.T, s *otlpsink.Sink, n int) []otlpsink.Span {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	spans, err := s.WaitFor(ctx, n)
	require.NoError(t, err)
	return spans
}

// pairs matches each server span with its client spans, checking the
// parent/child order on the way: one trace per request, the server span its
// root (or the caller's child), each client span its child and within it.
func pairs(t *testing.T, spans []otlpsink.Span) map[string][]otlpsink.Span {
	t.Helper()
	servers := map[string]otlpsink.Span{}
	for _, s := range spans {
		if s.Kind == tracepb.Span_SPAN_KIND_SERVER {
			servers[s.SpanID] = s
		}
	}
	out := map[string][]otlpsink.Span{}
	for _, s := range spans {
		if s.Kind != tracepb.Span_SPAN_KIND_CLIENT {
			continue
		}
		srv, ok := servers[s.Parent]
		require.True(t, ok, "client span %s has no server span for its parent %s", s.SpanID, s.Parent)
		require.Equal(t, srv.TraceID, s.TraceID)
		require.False(t, s.Start.Before(srv.Start), "a client span starts within its server span")
		require.False(t, s.End.After(srv.End), "and ends within it")
		out[srv.SpanID] = append(out[srv.SpanID], s)
	}
	return out
}

func TestTracingTenRequestsOverOTLPHTTP(t *testing.T) {
	sink := startSink(t, false)
	b := startTraceBackends(t, 2)
	l := tracedLBD(t, b, &config.Tracing{Endpoint: sink.URL(), ServiceName: "lbd-e2e", Headers: map[string]string{"X-Api-Key": "k1"}})
	for range 10 {
		resp, _ := l.get(t, "/orders/7?secret=x")
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	spans := waitSpans(t, sink, 20)
	require.Len(t, spans, 20)
	byServer := pairs(t, spans)
	require.Len(t, byServer, 10, "10 server spans, each with its client span")
	traces := map[string]bool{}
	for id, clients := range byServer {
		require.Len(t, clients, 1, "server span %s", id)
		traces[clients[0].TraceID] = true
	}
	require.Len(t, traces, 10, "each request its own trace")

	var forwarded []string
	for range 10 {
		forwarded = append(forwarded, <-b.got)
	}
	clientIDs := map[string]bool{}
	for _, s := range spans {
		require.Equal(t, "lbd-e2e", s.Resource["service.name"])
		switch s.Kind {
		case tracepb.Span_SPAN_KIND_SERVER:
			require.Equal(t, "GET default", s.Name)
			require.Equal(t, "/orders/7", s.Attrs["url.path"])
			require.Equal(t, int64(200), s.Attrs["http.response.status_code"])
			require.Equal(t, "p2c-ewma", s.Attrs["lbd.policy"])
			require.Equal(t, "127.0.0.1", s.Attrs["client.address"])
			require.Empty(t, s.Parent)
		case tracepb.Span_SPAN_KIND_CLIENT:
			require.Equal(t, "GET", s.Name)
			require.Contains(t, b.urls, s.Attrs["lbd.backend"])
			require.Equal(t, int64(1), s.Attrs["lbd.attempt"])
			clientIDs[s.TraceID+"-"+s.SpanID] = true
		}
	}
	for _, tp := range forwarded {
		parts := strings.Split(tp, "-")
		require.Len(t, parts, 4, tp)
		require.True(t, clientIDs[parts[1]+"-"+parts[2]], "the backend's parent %s is an exported client span", tp)
		require.Equal(t, "01", parts[3])
	}
	require.Equal(t, []string{"k1"}, sink.Headers()[0]["X-Api-Key"], "tracing.headers go with each export")
}

func TestTracingJoinsTheCallersTrace(t *testing.T) {
	sink := startSink(t, false)
	b := startTraceBackends(t, 1)
	l := tracedLBD(t, b, &config.Tracing{Endpoint: sink.URL(), SampleRatio: ratio(0)})
	const caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	resp, _ := l.get(t, "/", "Traceparent", caller)
	require.Equal(t, http.StatusOK, resp.StatusCode)

	spans := waitSpans(t, sink, 2)
	var srv, cli otlpsink.Span
	for _, s := range spans {
		if s.Kind == tracepb.Span_SPAN_KIND_SERVER {
			srv = s
		} else {
			cli = s
		}
	}
	require.Equal(t, "0af7651916cd43dd8448eb211c80319c", srv.TraceID, "the caller's sampled trace is joined even at ratio 0")
	require.Equal(t, "b7ad6b7169203331", srv.Parent)
	require.Equal(t, srv.SpanID, cli.Parent)
	require.Equal(t, "00-0af7651916cd43dd8448eb211c80319c-"+cli.SpanID+"-01", <-b.got,
		"passed on with the client span as the parent")
}

func TestTracingRetryShowsTwoAttempts(t *testing.T) {
	sink := startSink(t, false)
	b := startTraceBackends(t, 2)
	b.failFirst.Store(1)
	l := tracedLBD(t, b, &config.Tracing{Endpoint: sink.URL()})
	resp, _ := l.get(t, "/")
	require.Equal(t, http.StatusOK, resp.StatusCode)

	byServer := pairs(t, waitSpans(t, sink, 3))
	require.Len(t, byServer, 1)
	for _, clients := range byServer {
		require.Len(t, clients, 2)
		first, second := clients[0], clients[1]
		if first.Start.After(second.Start) {
			first, second = second, first
		}
		require.Equal(t, tracepb.Status_STATUS_CODE_ERROR, first.Status, "the 502 that was retried")
		require.Equal(t, int64(502), first.Attrs["http.response.status_code"])
		require.Equal(t, tracepb.Status_STATUS_CODE_UNSET, second.Status)
		require.Equal(t, int64(2), second.Attrs["lbd.attempt"])
		require.NotEqual(t, first.Attrs["lbd.backend"], second.Attrs["lbd.backend"])
	}
}

// TestTracingRatioZeroExportsNothingButPassesATraceOn: unsampled requests
// export nothing, yet the backend gets a traceparent (flags 00). A sampled
// request sent after them is the marker that everything before it would
// have arrived by then.
func TestTracingRatioZeroExportsNothingButPassesATraceOn(t *testing.T) {
	sink := startSink(t, false)
	b := startTraceBackends(t, 1)
	l := tracedLBD(t, b, &config.Tracing{Endpoint: sink.URL(), SampleRatio: ratio(0)})
	for range 5 {
		l.get(t, "/")
		tp := <-b.got
		require.Regexp(t, `^00-[0-9a-f]{32}-[0-9a-f]{16}-00$`, tp)
	}
	const marker = "00-11111111111111111111111111111111-2222222222222222-01"
	l.get(t, "/", "Traceparent", marker)
	<-b.got
	spans := waitSpans(t, sink, 2)
	require.NoError(t, l.d.tracing.current().ForceFlush(callCtx(t)))
	for _, s := range sink.Spans() {
		require.Equal(t, "11111111111111111111111111111111", s.TraceID, "only the sampled request was exported")
	}
	require.Len(t, spans, 2)
}

func TestTracingCollectorDownCostsRequestsNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	down := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())
	b := startTraceBackends(t, 1)
	l := tracedLBD(t, b, &config.Tracing{Endpoint: down})
	for range 20 {
		resp, body := l.get(t, "/")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "ok", body)
		<-b.got
	}
	dropped := func() float64 {
		for _, m := range scrape(t, l.adminURL)["lbd_tracing_spans_dropped_total"].GetMetric() {
			if labelOf(m, "reason") == "export_failed" {
				return m.GetCounter().GetValue()
			}
		}
		return 0
	}
	eventually(t, 10*time.Second, "export failures counted", func() bool { return dropped() == 40 })
}

// TestTracingGRPCCallsToAGRPCCollector: protocol grpc exports to an
// OTLP/gRPC receiver, and a gRPC call through lbd gets its spans too.
func TestTracingGRPCCallsToAGRPCCollector(t *testing.T) {
	sink := startSink(t, true)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "10")
	_, c := startGRPCLBD(t, startGRPCBackends(t, "g1"), func(c *config.Config) {
		c.Tracing = &config.Tracing{Endpoint: sink.URL(), Protocol: "grpc"}
	})
	ctx := metadata.AppendToOutgoingContext(callCtx(t), "traceparent", "00-33333333333333333333333333333333-4444444444444444-01")
	_, err := c.UnaryCall(ctx, &testpb.SimpleRequest{})
	require.NoError(t, err)
	byServer := pairs(t, waitSpans(t, sink, 2))
	require.Len(t, byServer, 1)
	for _, s := range sink.Spans() {
		require.Equal(t, "33333333333333333333333333333333", s.TraceID)
		if s.Kind == tracepb.Span_SPAN_KIND_SERVER {
			require.Equal(t, "POST default", s.Name)
			require.Equal(t, "grpc", s.Attrs["rpc.system.name"])
			require.Equal(t, "grpc.testing.TestService/UnaryCall", s.Attrs["rpc.method"])
			require.Equal(t, "2", s.Attrs["network.protocol.version"])
		} else {
			require.Equal(t, "OK", s.Attrs["rpc.response.status_code"])
		}
	}
}

// TestTracingFromTheEnvironmentAlone: with no tracing section, the
// standard OTEL_* variables turn tracing on.
func TestTracingFromTheEnvironmentAlone(t *testing.T) {
	sink := startSink(t, false)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", sink.URL())
	t.Setenv("OTEL_SERVICE_NAME", "from-env")
	b := startTraceBackends(t, 1)
	l := tracedLBD(t, b, nil)
	l.get(t, "/")
	spans := waitSpans(t, sink, 2)
	require.Equal(t, "from-env", spans[0].Resource["service.name"])
}

// TestTracingIsLiveOnReload: a reload turns tracing on, moves it to another
// collector and turns it off, each from the next request on.
func TestTracingIsLiveOnReload(t *testing.T) {
	first, second := startSink(t, false), startSink(t, false)
	b := startTraceBackends(t, 1)
	l := tracedLBD(t, b, nil)
	cfg := l.d.Config()

	const caller = "00-55555555555555555555555555555555-6666666666666666-01"
	l.get(t, "/", "Traceparent", caller)
	require.Equal(t, caller, <-b.got, "off: traceparent passes through untouched")

	on := cfg.Clone()
	on.Tracing = &config.Tracing{Endpoint: first.URL()}
	require.NoError(t, l.reload(t, on))
	l.get(t, "/")
	<-b.got
	waitSpans(t, first, 2)

	moved := on.Clone()
	moved.Tracing.Endpoint = second.URL()
	require.NoError(t, l.reload(t, moved))
	l.get(t, "/")
	<-b.got
	waitSpans(t, second, 2)
	require.Len(t, first.Spans(), 2, "the old provider got nothing after the reload")

	require.NoError(t, l.reload(t, cfg))
	require.Nil(t, l.d.tracing.current())
	l.get(t, "/", "Traceparent", caller)
	require.Equal(t, caller, <-b.got, "off again")

	bad := cfg.Clone()
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift")
	bad.Tracing = &config.Tracing{}
	err := l.reload(t, bad)
	require.ErrorContains(t, err, "OTEL_EXPORTER_OTLP_PROTOCOL")
	require.Nil(t, l.d.tracing.current(), "a refused reload changes nothing")
}

// TestExemplarsAndTheTextFormat: with OpenMetrics asked for, the latency
// histogram carries the trace id of a sampled request; the classic text
// format stays clean for promtool.
func TestExemplarsAndTheTextFormat(t *testing.T) {
	sink := startSink(t, false)
	b := startTraceBackends(t, 1)
	l := tracedLBD(t, b, &config.Tracing{Endpoint: sink.URL()})
	l.get(t, "/")
	<-b.got
	spans := waitSpans(t, sink, 2)

	req, err := http.NewRequest(http.MethodGet, l.adminURL+"/metrics", nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	om, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Contains(t, resp.Header.Get("Content-Type"), "application/openmetrics-text")
	require.Contains(t, string(om), `# {trace_id="`+spans[0].TraceID+`"}`)

	resp, err = http.Get(l.adminURL + "/metrics")
	require.NoError(t, err)
	text, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
	require.NotContains(t, string(text), "trace_id")
	require.Contains(t, string(text), "lbd_tracing_spans_dropped_total")

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (Debian's prometheus package)")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(string(text))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool check metrics:\n%s", out)
}

// TestTracingLeavesNoGoroutine: the providers of a start and of a reload
// (the first one retired by the reload) are all stopped by Shutdown,
// exporters included.
func TestTracingLeavesNoGoroutine(t *testing.T) {
	sink, moved := startSink(t, true), startSink(t, true)
	b := startTraceBackends(t, 1)
	ignore := goleak.IgnoreCurrent()
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "10")
	cfg := config.Default()
	cfg.Listen, cfg.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.AccessLog.Mode, cfg.Health.Disabled = "off", true
	cfg.Backends = []config.Backend{{URL: b.urls[0], Weight: 1, Protocol: "http1"}}
	cfg.Tracing = &config.Tracing{Endpoint: sink.URL(), Protocol: "grpc"}
	d := startDaemon(t, cfg)
	client := &http.Client{Transport: &http.Transport{}}
	get := func() {
		resp, err := client.Get("http://" + d.DataAddr() + "/")
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		<-b.got
	}
	get()
	next := cfg.Clone()
	// gRPC both times: the OTLP/HTTP exporter keeps idle connections in a
	// transport shared by all its instances (the SDK's, closed after 90s
	// idle), which no Shutdown closes.
	next.Tracing.Endpoint = moved.URL()
	_, err := d.ReloadConfig(context.Background(), next, false)
	require.NoError(t, err)
	get()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, d.Shutdown(ctx))
	client.CloseIdleConnections()
	goleak.VerifyNone(t, ignore)
	require.Len(t, sink.Spans(), 2, "the first provider flushed its spans when it retired")
	require.Len(t, moved.Spans(), 2, "the second when lbd stopped")
}
