package proxy

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"
)

// AccessLog writes one JSON line per request (log/slog's JSON handler):
//
//	{"time":"…","level":"INFO","msg":"request","req_id":"…","method":"GET","host":"…",
//	 "path":"/…","status":200,"latency_ms":1.234,"upstream_ms":1.1,"backend":"http://…",
//	 "policy":"p2c-ewma","attempts":1,"retries":0,"client":"…","bytes":512,"reject":"","trace_id":"…"}
//
// latency_ms runs from arrival to the end of the response; upstream_ms to the
// response headers of the backend whose answer the client got (backend).
// attempts counts the backends tried, retries those tried after the first
// (attempts - 1): a 503 with retries 1 is the last of two backends' answers. reject is the X-Lbd-Reject reason when
// lbd answered itself; trace_id comes from a W3C traceparent header.
//
// Lines go through a LineWriter, so the request path copies bytes into memory
// and never waits for a write(2). In sampled mode the log keeps a fraction of
// the successful requests and every error and rejection, which are the lines
// an operator looks for.
type AccessLog struct {
	h      slog.Handler
	out    *LineWriter
	sample float64 // 1 = every request
}

// NewAccessLog returns an access log writing JSON lines to w in batches,
// keeping the given fraction of successful requests (1 for all). Close it
// to write the last batch; it does not close w.
func NewAccessLog(w io.Writer, sample float64) *AccessLog {
	lw := NewLineWriter(w, 0, 0)
	return &AccessLog{
		h:      slog.NewJSONHandler(lw, &slog.HandlerOptions{Level: slog.LevelInfo}),
		out:    lw,
		sample: sample,
	}
}

// Close writes the buffered lines and stops the flusher. Requests that end
// after Close are not logged.
func (a *AccessLog) Close() error { return a.out.Close() }

// Log writes the line for one finished request.
func (a *AccessLog) Log(r *http.Request, st *reqState, d time.Duration, policy string) {
	if a.sample < 1 && st.status < 400 && st.rejected == "" && rand.Float64() >= a.sample {
		return
	}
	backend := ""
	if st.backend != nil {
		backend = st.backend.URL()
	}
	// The record goes straight to the handler: slog.Logger would also take
	// the caller's PC (runtime.Callers, a tenth of a line's cost), which an
	// access log has no use for.
	rec := slog.NewRecord(time.Now(), slog.LevelInfo, "request", 0)
	rec.AddAttrs(
		slog.String("req_id", st.id),
		slog.String("method", r.Method),
		slog.String("host", r.Host),
		slog.String("path", r.URL.Path),
		slog.Int("status", st.status),
		slog.Float64("latency_ms", float64(d.Microseconds())/1e3),
		slog.Float64("upstream_ms", float64(st.upstream.Microseconds())/1e3),
		slog.String("backend", backend),
		slog.String("policy", policy),
		slog.Int("attempts", st.attempts),
		slog.Int("retries", max(st.attempts-1, 0)),
		slog.String("client", st.client),
		slog.Int64("bytes", st.bytes),
		slog.String("reject", st.rejected),
		slog.String("trace_id", traceID(r.Header.Get("Traceparent"))),
	)
	_ = a.h.Handle(context.Background(), rec) // a write error surfaces at Close
}

// traceID extracts the trace id from a W3C traceparent header
// ("00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>").
func traceID(tp string) string {
	if len(tp) < 55 || tp[2] != '-' || tp[35] != '-' {
		return ""
	}
	return tp[3:35]
}
