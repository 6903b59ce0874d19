package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/lbd/lbd/backendactor"
)

// accessLogFields are the keys every access-log line carries (issue 6).
var accessLogFields = []string{
	"time", "req_id", "method", "host", "path", "status", "latency_ms", "upstream_ms",
	"backend", "policy", "attempts", "retries", "client", "bytes", "reject", "trace_id", "span_id",
}

func parseLines(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), "line %q", sc.Text())
		out = append(out, m)
	}
	return out
}

func TestAccessLogLineHasEveryField(t *testing.T) {
	h := backendactor.New(nil, backendactor.Config{URL: "http://127.0.0.1:8081"})
	defer func() { h.Stop(); <-h.Done() }()
	var buf bytes.Buffer
	al := NewAccessLog(&buf, 1)

	r := httptest.NewRequest(http.MethodGet, "http://shop.example/cart?x=1", nil)
	r.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	st := &reqState{id: "req-1", client: "203.0.113.9", status: 201, bytes: 42, backend: h, attempts: 2,
		upstream: 1500 * time.Microsecond}
	al.Log(r, st, 2250*time.Microsecond, "p2c-ewma")
	al.Log(httptest.NewRequest(http.MethodPost, "/x", nil),
		&reqState{id: "req-2", client: "::1", status: 503, rejected: "overload"}, time.Millisecond, "rr")
	require.NoError(t, al.Close())

	lines := parseLines(t, buf.Bytes())
	require.Len(t, lines, 2)
	for _, l := range lines {
		for _, f := range accessLogFields {
			require.Contains(t, l, f)
		}
	}
	want := map[string]any{
		"req_id": "req-1", "method": "GET", "host": "shop.example", "path": "/cart", "status": 201.0,
		"latency_ms": 2.25, "upstream_ms": 1.5, "backend": "http://127.0.0.1:8081", "policy": "p2c-ewma",
		"attempts": 2.0, "retries": 1.0, "client": "203.0.113.9", "bytes": 42.0, "reject": "",
		"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
	}
	for k, v := range want {
		require.Equal(t, v, lines[0][k], k)
	}
	require.Equal(t, "overload", lines[1]["reject"])
	require.Equal(t, 0.0, lines[1]["retries"], "no backend tried: no retry")
	require.Equal(t, "", lines[1]["backend"])
	require.Equal(t, "", lines[1]["trace_id"])
}

// slogLine is an access-log line as lbd wrote it before issue 18, through
// log/slog's JSON handler: the reference that appendJSON must match byte
// for byte.
func slogLine(l *accessLine, now time.Time) []byte {
	tid, sid := l.traceID, l.spanID
	if l.span.IsValid() {
		tid, sid = l.span.TraceID().String(), l.span.SpanID().String()
	}
	var buf bytes.Buffer
	h := slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})
	rec := slog.NewRecord(now, slog.LevelInfo, "request", 0)
	rec.AddAttrs(
		slog.String("req_id", l.reqID), slog.String("method", l.method), slog.String("host", l.host),
		slog.String("path", l.path), slog.Int("status", l.status),
		slog.Float64("latency_ms", float64(l.latencyUs)/1e3), slog.Float64("upstream_ms", float64(l.upstreamUs)/1e3),
		slog.String("backend", l.backend), slog.String("policy", l.policy), slog.Int("attempts", l.attempts), slog.Int("retries", l.retries),
		slog.String("client", l.client), slog.Int64("bytes", l.bytes), slog.String("reject", l.reject),
		slog.String("trace_id", tid), slog.String("span_id", sid),
	)
	if err := h.Handle(context.Background(), rec); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

func TestAccessLineIsSlogs(t *testing.T) {
	strs := []string{
		"", "plain", `quote " and \ backslash`, "ctl \x00\x01\x08\x0b\x0c\x1b\x1f\x7f", "\n\r\t",
		"<script>&amp;</script>", "é ü 日本 🎉", "bad \xff\xfe utf8", "\u2028 and \u2029",
		"cut \xe2\x82", "\xed\xa0\x80 surrogate", "/path?q=1&r=<2>", "\uFEFF bom", "\U0010FFFF max",
	}
	micros := []int64{0, 1, 10, 100, 120, 1000, 1001, 1500, 2250, 1234567, 99999999999, 999999999999, 1e12, 1e12 + 1,
		123456789012345, 1<<53 + 1, math.MaxInt64, -1, -1500}
	zone := time.FixedZone("odd", -(3*3600 + 30*60))
	times := []time.Time{
		time.Date(2026, 12, 1, 15, 4, 5, 123456789, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 100000000, zone), // trailing zeros in the fraction go
		time.Date(2026, 1, 2, 3, 4, 5, 0, time.Local),
		time.Now(), // with a monotonic reading, which the line drops
	}
	n := 0
	for i, s := range strs {
		for j, us := range micros {
			l := accessLine{
				reqID: s, method: strs[(i+1)%len(strs)], host: strs[(i+2)%len(strs)], path: strs[(i+3)%len(strs)],
				status: 100 + i*37, latencyUs: us, upstreamUs: micros[(j+1)%len(micros)],
				backend: strs[(i+4)%len(strs)], policy: strs[(i+5)%len(strs)], attempts: j, retries: max(j-1, 0),
				client: strs[(i+6)%len(strs)], bytes: int64(j) << 40, reject: strs[(i+7)%len(strs)],
				traceID: strs[(i+8)%len(strs)],
			}
			if j%3 == 0 { // lbd's own span: its ids are written instead
				l.span = trace.NewSpanContext(trace.SpanContextConfig{
					TraceID: trace.TraceID{0x4b, 0xf9, byte(i), byte(j), 15: 1}, SpanID: trace.SpanID{0, byte(j), 7: 0xb7}})
			}
			now := times[(i+j)%len(times)]
			require.Equal(t, string(slogLine(&l, now)), string(l.appendJSON(nil, now)), "strings %d, micros %d", i, j)
			n++
		}
	}
	require.Equal(t, len(strs)*len(micros), n)
}

// FuzzAccessLine holds the encoder equal to slog's on any strings and
// latencies.
//
//	go test -run '^$' -fuzz FuzzAccessLine -fuzztime 30s ./proxy/
func FuzzAccessLine(f *testing.F) {
	f.Add("GET", "/a\"b", "\xff\u2028", int64(1500), int64(7))
	f.Fuzz(func(t *testing.T, method, path, client string, latency, bytes int64) {
		l := accessLine{reqID: client, method: method, path: path, host: path + method, status: 200,
			latencyUs: latency, upstreamUs: latency / 7, client: client, bytes: bytes, reject: method, traceID: path}
		now := time.Unix(0, bytes).UTC()
		require.Equal(t, string(slogLine(&l, now)), string(l.appendJSON(nil, now)))
	})
}

func TestSampledAccessLogKeepsErrorsAndRejections(t *testing.T) {
	var buf bytes.Buffer
	al := NewAccessLog(&buf, 0) // keep no successful request
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	for i, st := range []*reqState{
		{id: "ok", status: 200}, {id: "redirect", status: 302},
		{id: "client-error", status: 404}, {id: "upstream-error", status: 502},
		{id: "shed", status: 429, rejected: "rate-limit"},
	} {
		al.Log(r, st, time.Duration(i)*time.Millisecond, "rr")
	}
	require.NoError(t, al.Close())
	var ids []string
	for _, l := range parseLines(t, buf.Bytes()) {
		ids = append(ids, l["req_id"].(string))
	}
	require.Equal(t, []string{"client-error", "upstream-error", "shed"}, ids)
}

func TestTraceID(t *testing.T) {
	for tp, want := range map[string]string{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01": "4bf92f3577b34da6a3ce929d0e0e4736",
		"": "", "garbage": "", "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01": "",
	} {
		require.Equal(t, want, traceID(tp), tp)
	}
}

func TestLineWriterLosesNoLineOnClose(t *testing.T) {
	var out bytes.Buffer
	w := NewLineWriter(&out, time.Hour, 1024) // only size and Close flush
	const writers, each = 8, 500
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				_, err := fmt.Fprintf(w, "%d %d\n", g, i)
				require.NoError(t, err)
			}
		})
	}
	wg.Wait()
	require.NoError(t, w.Close())

	next := make([]int, writers)
	sc := bufio.NewScanner(&out)
	n := 0
	for sc.Scan() {
		var g, i int
		_, err := fmt.Sscanf(sc.Text(), "%d %d", &g, &i)
		require.NoError(t, err)
		require.Equal(t, next[g], i, "each writer's lines stay in order")
		next[g]++
		n++
	}
	require.Equal(t, writers*each, n)
	_, err := w.Write([]byte("late\n"))
	require.ErrorIs(t, err, ErrLogClosed)
	require.NoError(t, w.Close(), "Close twice is harmless")
}

// gate is an output that blocks each Write until the test lets it through.
type gate struct {
	open chan struct{}
	mu   sync.Mutex
	got  bytes.Buffer
}

func (g *gate) Write(p []byte) (int, error) {
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.got.Write(p)
}

func (g *gate) String() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.got.String()
}

func TestLineWriterFlushesOnTimeAndPushesBackWhenOutputIsStuck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := &gate{open: make(chan struct{})}
		w := NewLineWriter(g, 100*time.Millisecond, 10)
		_, err := w.Write([]byte("first\n")) // under the limit: waits for the tick
		require.NoError(t, err)
		synctest.Wait()
		require.Empty(t, g.String(), "nothing written before the tick")
		<-time.After(100 * time.Millisecond)
		synctest.Wait() // the flusher is now blocked in the output
		g.open <- struct{}{}
		synctest.Wait()
		require.Equal(t, "first\n", g.String())

		// The output is stuck: the flusher holds one batch, the buffer fills
		// to twice the limit, and the next writer waits instead of growing it.
		_, _ = w.Write([]byte("0123456789\n")) // a full batch: kicks the flusher, which blocks in the output
		synctest.Wait()
		_, _ = w.Write([]byte("abcdefghij\n"))
		wrote := make(chan struct{})
		go func() {
			_, _ = w.Write([]byte("klmnopqrst\n"))
			close(wrote)
		}()
		synctest.Wait()
		select {
		case <-wrote:
			t.Fatal("a writer went past the bound while the output was stuck")
		default:
		}
		close(g.open) // unstick
		<-wrote
		require.NoError(t, w.Close())
		require.Equal(t, "first\n0123456789\nabcdefghij\nklmnopqrst\n", g.String())
	})
}

type failing struct{}

func (failing) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestLineWriterReportsOutputErrorOnClose(t *testing.T) {
	w := NewLineWriter(failing{}, time.Hour, 0)
	_, err := io.WriteString(w, "x\n")
	require.NoError(t, err, "the request path never sees the output's error")
	require.ErrorContains(t, w.Close(), "disk full")
}

// BenchmarkAccessLog is the request path's cost of one access-log line:
// formatting (the JSON encoder of accesslog_json.go) and the copy into the
// batch; the write(2) happens on the flusher.
//
//	go test -run '^$' -bench AccessLog -benchmem ./proxy/
func BenchmarkAccessLog(b *testing.B) {
	h := backendactor.New(nil, backendactor.Config{URL: "http://127.0.0.1:8081"})
	defer func() { h.Stop(); <-h.Done() }()
	r := httptest.NewRequest(http.MethodGet, "http://shop.example/cart", nil)
	r.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	for _, sample := range []float64{1, 0.1} {
		b.Run(fmt.Sprintf("sample=%g", sample), func(b *testing.B) {
			al := NewAccessLog(io.Discard, sample)
			defer al.Close()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				st := &reqState{id: "d4h2l3m0k2f0c1g5q6a0", client: "127.0.0.1", status: 200, bytes: 512,
					backend: h, attempts: 1, upstream: time.Millisecond}
				for pb.Next() {
					al.Log(r, st, 1200*time.Microsecond, "p2c-ewma")
				}
			})
		})
	}
}
