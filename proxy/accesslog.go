package proxy

import (
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// AccessLog writes one JSON line per request, in the format of log/slog's
// JSON handler:
//
//	{"time":"…","level":"INFO","msg":"request","req_id":"…","method":"GET","host":"…",
//	 "path":"/…","status":200,"latency_ms":1.234,"upstream_ms":1.1,"backend":"http://…",
//	 "policy":"p2c-ewma","attempts":1,"retries":0,"client":"…","bytes":512,"reject":"","trace_id":"…","span_id":"…"}
//
// latency_ms runs from arrival to the end of the response; upstream_ms to the
// response headers of the backend whose answer the client got (backend).
// attempts counts the backends tried, retries those tried after the first
// (attempts - 1): a 503 with retries 1 is the last of two backends' answers.
// reject is the X-Lbd-Reject reason when lbd answered itself. trace_id and
// span_id are lbd's server span's with tracing on (tracing.go); with it off,
// trace_id comes from a W3C traceparent header and span_id is "".
//
// A line is encoded by appending into a pooled buffer (accesslog_json.go),
// then goes through a LineWriter, so the request path copies bytes into
// memory and never waits for a write(2). In sampled mode the log keeps a
// fraction of the successful requests and every error and rejection, which
// are the lines an operator looks for.
type AccessLog struct {
	out    *LineWriter
	sample atomic.Uint64 // math.Float64bits of the share of successes kept; 1 = every request
	bufs   sync.Pool
}

// NewAccessLog returns an access log writing JSON lines to w in batches,
// keeping the given fraction of successful requests (1 for all). Close it
// to write the last batch; it does not close w.
func NewAccessLog(w io.Writer, sample float64) *AccessLog {
	a := &AccessLog{out: NewLineWriter(w, 0, 0)}
	a.SetSampleRate(sample)
	a.bufs.New = func() any { b := make([]byte, 0, 512); return &b }
	return a
}

// SetSampleRate changes the share of successful requests logged.
func (a *AccessLog) SetSampleRate(f float64) { a.sample.Store(math.Float64bits(f)) }

// SetOutput moves the log to w after writing what is buffered to the old
// output (see LineWriter.SetOutput); the caller closes the old output.
func (a *AccessLog) SetOutput(w io.Writer) error { return a.out.SetOutput(w) }

// Close writes the buffered lines and stops the flusher. Requests that end
// after Close are not logged.
func (a *AccessLog) Close() error { return a.out.Close() }

// Log writes the line for one finished request.
func (a *AccessLog) Log(r *http.Request, st *reqState, d time.Duration, policy string) {
	if sample := math.Float64frombits(a.sample.Load()); sample < 1 && st.status < 400 && st.rejected == "" && rand.Float64() >= sample {
		return
	}
	l := accessLine{
		reqID: st.id, method: r.Method, host: r.Host, path: r.URL.Path, status: st.status,
		latencyUs: d.Microseconds(), upstreamUs: st.upstream.Microseconds(),
		policy: policy, attempts: st.attempts, retries: max(st.attempts-1, 0), client: st.client, bytes: st.bytes,
		reject: st.rejected,
	}
	st.traceIDs(r, &l)
	if st.backend != nil {
		l.backend = st.backend.URL()
	}
	bp := a.bufs.Get().(*[]byte)
	*bp = l.appendJSON((*bp)[:0], time.Now())
	_, _ = a.out.Write(*bp) // a write error surfaces at Close
	if cap(*bp) <= 16<<10 { // a line with a huge path does not pin its buffer
		a.bufs.Put(bp)
	}
}

// traceID extracts the trace id from a W3C traceparent header
// ("00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>").
func traceID(tp string) string {
	if len(tp) < 55 || tp[2] != '-' || tp[35] != '-' {
		return ""
	}
	return tp[3:35]
}
