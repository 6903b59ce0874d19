package proxy

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/lbd/lbd/actor"
	"github.com/lbd/lbd/backendactor"
	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/scheduler"
)

// tracedLB is a data plane over real loopback backends, tracing into a
// SpanRecorder.
type tracedLB struct {
	h    *Handler
	url  string
	sr   *tracetest.SpanRecorder
	reg  *prometheus.Registry
	seen chan http.Header // each request's headers as a backend received them
}

type tracedOpts struct {
	ratio    float64 // the sampler's ratio for new traces
	off      bool    // no tracing at all
	admitter Admitter
	routes   []config.Route
	log      io.Writer
	roots    RootSampler // decides new traces before the SDK, when set
}

// startTraced runs the proxy over one backend per handler (round robin, one
// retry) and records the headers each backend receives.
func startTraced(t *testing.T, o tracedOpts, backends ...http.HandlerFunc) *tracedLB {
	t.Helper()
	l := &tracedLB{sr: tracetest.NewSpanRecorder(), reg: prometheus.NewRegistry(), seen: make(chan http.Header, 64)}
	sched, err := scheduler.New(scheduler.Config{Policy: "rr", Registry: actor.NewRegistry(), Logger: slog.New(slog.DiscardHandler),
		Backend: backendactor.Config{Breaker: backendactor.BreakerConfig{FailureThreshold: 50, OpenFor: time.Second, HalfOpenProbes: 1}}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, sched.Stop(context.Background())) })
	for _, fn := range backends {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			l.seen <- r.Header.Clone()
			fn(w, r)
		}))
		t.Cleanup(srv.Close)
		_, err := sched.Add(context.Background(), scheduler.Spec{URL: srv.URL, Weight: 1, Initial: true})
		require.NoError(t, err)
	}
	var al *AccessLog
	if o.log != nil {
		al = NewAccessLog(o.log, 1)
	}
	l.h = New(Options{Admitter: o.admitter, Registerer: l.reg, Logger: slog.New(slog.DiscardHandler), Live: Live{AccessLog: al}})
	t.Cleanup(l.h.Close)
	pool := NewPool(config.DefaultPool, sched, PoolSettings{Retries: RetryOptions{Max: 1, BudgetPercent: 100, MinPerSecond: 100}})
	l.h.SetRoutes(l.h.NewRoutes(o.routes, map[string]*Pool{config.DefaultPool: pool}))
	live := Live{AccessLog: al}
	if !o.off {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(l.sr),
			sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(o.ratio))))
		t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		live.Tracing = NewTracing(tp, propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}), o.roots)
	}
	l.h.SetLive(live)
	srv := httptest.NewServer(l.h)
	t.Cleanup(srv.Close)
	l.url = srv.URL
	return l
}

func (l *tracedLB) do(t *testing.T, method, path string, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, l.url+path, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// spans returns the ended spans once n have ended: a client span ends when
// ReverseProxy closes the response body, which may be just after the client
// has its answer.
func (l *tracedLB) spans(t *testing.T, n int) []sdktrace.ReadOnlySpan {
	t.Helper()
	require.Eventually(t, func() bool { return len(l.sr.Ended()) >= n }, 5*time.Second, time.Millisecond)
	got := l.sr.Ended()
	require.Len(t, got, n)
	return got
}

func ok(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]any {
	m := map[attribute.Key]any{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value.AsInterface()
	}
	return m
}

// byKind splits spans into the server span and the client spans in start order.
func byKind(t *testing.T, spans []sdktrace.ReadOnlySpan) (server sdktrace.ReadOnlySpan, clients []sdktrace.ReadOnlySpan) {
	t.Helper()
	for _, s := range spans {
		switch s.SpanKind() {
		case trace.SpanKindServer:
			require.Nil(t, server, "one server span per request")
			server = s
		case trace.SpanKindClient:
			clients = append(clients, s)
		}
	}
	require.NotNil(t, server)
	for i := 1; i < len(clients); i++ {
		require.True(t, !clients[i].StartTime().Before(clients[i-1].StartTime()))
	}
	return server, clients
}

// parentOf reads the parent span id of a traceparent header.
func parentOf(t *testing.T, tp string) (traceID, parent, flags string) {
	t.Helper()
	parts := strings.Split(tp, "-")
	require.Len(t, parts, 4, "traceparent %q", tp)
	return parts[1], parts[2], parts[3]
}

func TestSpansOfAProxiedRequest(t *testing.T) {
	l := startTraced(t, tracedOpts{ratio: 1}, ok)
	resp := l.do(t, http.MethodGet, "/items/42?q=1", "User-Agent", "test-agent")
	require.Equal(t, http.StatusOK, resp.StatusCode)

	srv, clients := byKind(t, l.spans(t, 2))
	require.Len(t, clients, 1)
	cli := clients[0]
	require.Equal(t, "GET default", srv.Name(), "method and pool: never the path")
	require.Equal(t, "GET", cli.Name())
	require.False(t, srv.Parent().IsValid(), "a new trace: lbd's span is the root")
	require.Equal(t, srv.SpanContext().TraceID(), cli.SpanContext().TraceID())
	require.Equal(t, srv.SpanContext().SpanID(), cli.Parent().SpanID())
	require.Equal(t, codes.Unset, srv.Status().Code)
	require.Equal(t, codes.Unset, cli.Status().Code)

	a := attrs(srv)
	require.Equal(t, "GET", a["http.request.method"])
	require.Equal(t, "/items/42", a["url.path"])
	require.Equal(t, "http", a["url.scheme"])
	require.Equal(t, int64(200), a["http.response.status_code"])
	require.Equal(t, "127.0.0.1", a["client.address"])
	require.Equal(t, "test-agent", a["user_agent.original"])
	require.Equal(t, "default", a["lbd.pool"])
	require.Equal(t, "rr", a["lbd.policy"])
	require.Equal(t, int64(1), a["lbd.attempts"])
	require.Equal(t, resp.Header.Get("X-Request-Id"), a["lbd.request_id"])
	require.NotContains(t, a, attribute.Key("lbd.reject"))

	c := attrs(cli)
	require.Equal(t, "GET", c["http.request.method"])
	require.Equal(t, "127.0.0.1", c["server.address"])
	backend := c["lbd.backend"].(string)
	require.Equal(t, backend+"/items/42", c["url.full"], "the query stays out")
	require.Equal(t, int64(1), c["lbd.attempt"])
	require.Equal(t, int64(200), c["http.response.status_code"])
	require.NotZero(t, c["server.port"])
	require.Equal(t, backend, attrs(srv)["lbd.backend"])

	got := <-l.seen
	tid, parent, flags := parentOf(t, got.Get("Traceparent"))
	require.Equal(t, srv.SpanContext().TraceID().String(), tid)
	require.Equal(t, cli.SpanContext().SpanID().String(), parent, "the backend's parent is the attempt's client span")
	require.Equal(t, "01", flags)
}

func TestIncomingTraceIsJoinedAndPassedOn(t *testing.T) {
	l := startTraced(t, tracedOpts{ratio: 0}, ok) // ratio 0: only the caller's decision samples
	const caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	l.do(t, http.MethodPost, "/orders", "Traceparent", caller, "Tracestate", "vendor=x", "Baggage", "tenant=acme")

	srv, clients := byKind(t, l.spans(t, 2))
	require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", srv.SpanContext().TraceID().String())
	require.Equal(t, "00f067aa0ba902b7", srv.Parent().SpanID().String(), "the server span's parent is the caller's span")
	require.True(t, srv.Parent().IsRemote())
	require.Equal(t, "POST default", srv.Name())

	got := <-l.seen
	tid, parent, _ := parentOf(t, got.Get("Traceparent"))
	require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", tid)
	require.Equal(t, clients[0].SpanContext().SpanID().String(), parent)
	require.Equal(t, "vendor=x", got.Get("Tracestate"))
	require.Equal(t, "tenant=acme", got.Get("Baggage"))
}

func TestRetriedRequestHasTwoClientSpans(t *testing.T) {
	var calls atomic.Int64
	flaky := func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		ok(w, r)
	}
	l := startTraced(t, tracedOpts{ratio: 1}, flaky, flaky)
	require.Equal(t, http.StatusOK, l.do(t, http.MethodGet, "/").StatusCode)

	srv, clients := byKind(t, l.spans(t, 3))
	require.Len(t, clients, 2)
	first, second := clients[0], clients[1]
	require.Equal(t, codes.Error, first.Status().Code, "the 503 that was retried")
	require.Equal(t, int64(503), attrs(first)["http.response.status_code"])
	require.Equal(t, "503", attrs(first)["error.type"])
	require.Equal(t, codes.Unset, second.Status().Code)
	require.Equal(t, int64(2), attrs(second)["lbd.attempt"])
	require.Equal(t, int64(1), attrs(second)["http.request.resend_count"])
	require.NotEqual(t, attrs(first)["lbd.backend"], attrs(second)["lbd.backend"], "a retry goes to another backend")
	for _, c := range clients {
		require.Equal(t, srv.SpanContext().SpanID(), c.Parent().SpanID())
	}
	require.Equal(t, int64(2), attrs(srv)["lbd.attempts"])
	require.Equal(t, codes.Unset, srv.Status().Code, "the client got its 200")

	var parents []string
	for range 2 {
		_, p, _ := parentOf(t, (<-l.seen).Get("Traceparent"))
		parents = append(parents, p)
	}
	require.Equal(t, []string{first.SpanContext().SpanID().String(), second.SpanContext().SpanID().String()}, parents,
		"each attempt names its own span")
}

func TestFailedAttemptSpan(t *testing.T) {
	l := startTraced(t, tracedOpts{ratio: 1}, func(w http.ResponseWriter, r *http.Request) {
		// Hijack and close without an answer: a transport error.
		conn, _, err := http.NewResponseController(w).Hijack()
		require.NoError(t, err)
		conn.Close()
	})
	require.Equal(t, http.StatusBadGateway, l.do(t, http.MethodPost, "/").StatusCode)
	srv, clients := byKind(t, l.spans(t, 2))
	require.Len(t, clients, 1, "POST without a replayable body is not retried")
	require.Equal(t, codes.Error, clients[0].Status().Code)
	require.Equal(t, "connection_closed", attrs(clients[0])["error.type"])
	require.NotEmpty(t, clients[0].Status().Description)
	require.NotContains(t, attrs(clients[0]), attribute.Key("http.response.status_code"))
	require.Equal(t, codes.Error, srv.Status().Code)
	require.Equal(t, "502", attrs(srv)["error.type"])
}

type refuseAll struct{}

func (refuseAll) Admit(*http.Request, string) (Ticket, string, int, time.Duration) {
	return nil, RejectRateLimit, http.StatusTooManyRequests, time.Second
}

func TestShedRequestsGetAServerSpanOnly(t *testing.T) {
	t.Run("admission", func(t *testing.T) {
		l := startTraced(t, tracedOpts{ratio: 1, admitter: refuseAll{}}, ok)
		require.Equal(t, http.StatusTooManyRequests, l.do(t, http.MethodGet, "/").StatusCode)
		spans := l.spans(t, 1)
		require.Equal(t, trace.SpanKindServer, spans[0].SpanKind())
		a := attrs(spans[0])
		require.Equal(t, "rate-limit", a["lbd.reject"])
		require.Equal(t, int64(429), a["http.response.status_code"])
		require.Equal(t, codes.Unset, spans[0].Status().Code, "a 4xx is not a server error")
		require.Empty(t, l.seen)
	})
	t.Run("no route", func(t *testing.T) {
		routes := []config.Route{{Name: "api", Match: config.RouteMatch{PathPrefix: "/api/"}, Pool: config.DefaultPool}}
		l := startTraced(t, tracedOpts{ratio: 1, routes: routes}, ok)
		require.Equal(t, http.StatusNotFound, l.do(t, http.MethodGet, "/elsewhere").StatusCode)
		require.Equal(t, http.StatusOK, l.do(t, http.MethodGet, "/api/x").StatusCode)
		spans := l.spans(t, 3)
		require.Equal(t, "GET", spans[0].Name(), "nothing matched: the method alone")
		require.Equal(t, "no-route", attrs(spans[0])["lbd.reject"])
		srv, _ := byKind(t, spans[1:])
		require.Equal(t, "GET api", srv.Name(), "a named route names the span")
		require.Equal(t, "api", attrs(srv)["lbd.route"])
	})
}

func TestUnknownMethodSpanName(t *testing.T) {
	l := startTraced(t, tracedOpts{ratio: 1}, ok)
	l.do(t, "PURGE", "/")
	srv, clients := byKind(t, l.spans(t, 2))
	require.Equal(t, "HTTP default", srv.Name())
	require.Equal(t, "HTTP", clients[0].Name())
	require.Equal(t, "_OTHER", attrs(srv)["http.request.method"])
	require.Equal(t, "PURGE", attrs(srv)["http.request.method_original"])
}

// TestUnsampledRequestsStillPassATraceOn: at ratio 0 nothing is recorded,
// yet the backend gets a traceparent (not sampled) so its own spans share a
// trace id with lbd's access log line.
func TestUnsampledRequestsStillPassATraceOn(t *testing.T) {
	var log bytes.Buffer
	l := startTraced(t, tracedOpts{ratio: 0, log: &log}, ok)
	l.do(t, http.MethodGet, "/")
	tid, parent, flags := parentOf(t, (<-l.seen).Get("Traceparent"))
	require.Equal(t, "00", flags)
	require.NotEqual(t, strings.Repeat("0", 32), tid)
	require.NotEqual(t, strings.Repeat("0", 16), parent)
	l.h.Close()
	require.NoError(t, l.h.live.Load().AccessLog.Close())
	lines := parseLines(t, log.Bytes())
	require.Len(t, lines, 1)
	require.Equal(t, tid, lines[0]["trace_id"])
	require.Equal(t, parent, lines[0]["span_id"], "unsampled, the backend's parent is lbd's (unrecorded) server span")
	require.Empty(t, l.sr.Ended())
}

func TestTracingOffPassesTraceparentThrough(t *testing.T) {
	var log bytes.Buffer
	l := startTraced(t, tracedOpts{off: true, log: &log}, ok)
	const caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	l.do(t, http.MethodGet, "/", "Traceparent", caller)
	l.do(t, http.MethodGet, "/")
	require.Equal(t, caller, (<-l.seen).Get("Traceparent"), "untouched")
	require.Empty(t, (<-l.seen).Get("Traceparent"), "none made up")
	require.NoError(t, l.h.live.Load().AccessLog.Close())
	lines := parseLines(t, log.Bytes())
	require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", lines[0]["trace_id"])
	require.Equal(t, "", lines[0]["span_id"], "lbd made no span")
	require.Equal(t, "", lines[1]["trace_id"])
}

func TestAccessLogCarriesTheServerSpan(t *testing.T) {
	var log bytes.Buffer
	l := startTraced(t, tracedOpts{ratio: 1, log: &log}, ok)
	const caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	l.do(t, http.MethodGet, "/", "Traceparent", caller)
	srv, _ := byKind(t, l.spans(t, 2))
	require.NoError(t, l.h.live.Load().AccessLog.Close())
	line := parseLines(t, log.Bytes())[0]
	require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", line["trace_id"])
	require.Equal(t, srv.SpanContext().SpanID().String(), line["span_id"], "lbd's span, not the caller's")
}

func TestLatencyExemplarsNameSampledTraces(t *testing.T) {
	l := startTraced(t, tracedOpts{ratio: 1}, ok)
	l.do(t, http.MethodGet, "/")
	srv, _ := byKind(t, l.spans(t, 2))
	mfs, err := l.reg.Gather()
	require.NoError(t, err)
	var exemplars []string
	for _, mf := range mfs {
		if mf.GetName() != "lbd_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, b := range m.GetHistogram().GetBucket() {
				if e := b.GetExemplar(); e != nil {
					for _, lp := range e.GetLabel() {
						exemplars = append(exemplars, lp.GetName()+"="+lp.GetValue())
					}
				}
			}
		}
	}
	require.Equal(t, []string{"trace_id=" + srv.SpanContext().TraceID().String()}, exemplars)
}

// TestWebSocketClientSpanLastsTheConnection: the attempt's span ends when
// the upgraded connection closes, not at the 101.
func TestWebSocketClientSpanLastsTheConnection(t *testing.T) {
	l := startTraced(t, tracedOpts{ratio: 1}, func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := r.Context()
		for {
			typ, msg, err := c.Read(ctx)
			if err != nil {
				return
			}
			if err := c.Write(ctx, typ, msg); err != nil {
				return
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(l.url, "http")+"/ws", nil)
	require.NoError(t, err)
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("hi")))
	_, msg, err := c.Read(ctx)
	require.NoError(t, err)
	require.Equal(t, "hi", string(msg))
	require.Empty(t, l.sr.Ended(), "both spans last while the connection is open")
	require.Len(t, l.sr.Started(), 2)

	opened := time.Now()
	require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
	srv, clients := byKind(t, l.spans(t, 2))
	require.Equal(t, int64(101), attrs(clients[0])["http.response.status_code"])
	require.Equal(t, int64(101), attrs(srv)["http.response.status_code"])
	require.True(t, clients[0].EndTime().After(opened), "the client span ended with the connection")
}

func TestSetTraceparentWritesWhatTheW3CPropagatorWrites(t *testing.T) {
	tid, err := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	require.NoError(t, err)
	sid, err := trace.SpanIDFromHex("00f067aa0ba902b7")
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		sc   trace.SpanContext
	}{
		{"unsampled", trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid})},
		{"sampled", trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})},
		{"other flag bits", trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: 0xfe})},
		{"invalid", trace.SpanContext{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := http.Header{}
			propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), tc.sc), propagation.HeaderCarrier(want))
			got := http.Header{}
			(&reqState{}).setTraceparent(got, tc.sc)
			require.Equal(t, want.Values("Traceparent"), got.Values("Traceparent"))
		})
	}
}

// fixedRoot draws the same ids every time and never samples.
type fixedRoot struct {
	tid trace.TraceID
	sid trace.SpanID
}

func (f fixedRoot) Draw() (trace.TraceID, trace.SpanID, bool)                      { return f.tid, f.sid, false }
func (fixedRoot) WithTraceID(ctx context.Context, _ trace.TraceID) context.Context { return ctx }

// TestRootsLeftUnsampledNeverReachTheSDK: a request with no trace that the
// root sampler drops gets its drawn ids, in the traceparent to the backend
// and in the access log, and the SDK records nothing; a request that brings
// a trace still goes to the SDK, which follows its parent.
func TestRootsLeftUnsampledNeverReachTheSDK(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	var log bytes.Buffer
	l := startTraced(t, tracedOpts{ratio: 1, log: &log, roots: fixedRoot{tid, sid}}, ok)
	l.do(t, http.MethodGet, "/")
	require.Equal(t, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", (<-l.seen).Get("Traceparent"))
	l.do(t, http.MethodGet, "/", "Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	gotTID, _, flags := parentOf(t, (<-l.seen).Get("Traceparent"))
	require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", gotTID)
	require.Equal(t, "01", flags)
	l.h.Close()
	require.NoError(t, l.h.live.Load().AccessLog.Close())
	lines := parseLines(t, log.Bytes())
	require.Len(t, lines, 2)
	require.Equal(t, tid.String(), lines[0]["trace_id"])
	require.Equal(t, sid.String(), lines[0]["span_id"])
	for _, s := range l.sr.Ended() {
		require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", s.SpanContext().TraceID().String(), "only the caller's trace was recorded")
	}
	require.Len(t, l.sr.Ended(), 2, "its server and client spans")
}
