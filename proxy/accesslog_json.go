package proxy

import (
	"encoding/hex"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// accessLine is one access-log line's fields, in the order they are
// written (AccessLog documents them).
type accessLine struct {
	reqID, method, host, path string
	status                    int
	latencyUs, upstreamUs     int64 // written in milliseconds, as float64(µs)/1e3
	backend, policy           string
	attempts, retries         int
	client                    string
	bytes                     int64
	reject, traceID, spanID   string
	span                      trace.SpanContext // lbd's server span: its ids are written, not traceID and spanID
}

// appendJSON appends the line as log/slog's JSON handler writes the same
// record (time, level and msg first, then the attributes; the same string
// escaping and float formatting), without its reflection, attribute
// slices and encoding/json round trip for floats. TestAccessLineIsSlogs
// holds the two outputs equal.
func (l *accessLine) appendJSON(b []byte, now time.Time) []byte {
	b = append(b, `{"time":"`...)
	b = now.Round(0).AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"INFO","msg":"request","req_id":`...)
	b = appendJSONString(b, l.reqID)
	b = append(b, `,"method":`...)
	b = appendJSONString(b, l.method)
	b = append(b, `,"host":`...)
	b = appendJSONString(b, l.host)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, l.path)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(l.status), 10)
	b = append(b, `,"latency_ms":`...)
	b = appendMillis(b, l.latencyUs)
	b = append(b, `,"upstream_ms":`...)
	b = appendMillis(b, l.upstreamUs)
	b = append(b, `,"backend":`...)
	b = appendJSONString(b, l.backend)
	b = append(b, `,"policy":`...)
	b = appendJSONString(b, l.policy)
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(l.attempts), 10)
	b = append(b, `,"retries":`...)
	b = strconv.AppendInt(b, int64(l.retries), 10)
	b = append(b, `,"client":`...)
	b = appendJSONString(b, l.client)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, l.bytes, 10)
	b = append(b, `,"reject":`...)
	b = appendJSONString(b, l.reject)
	if l.span.IsValid() { // hex digits need no escaping; written as they are, they cost no string
		tid, sid := l.span.TraceID(), l.span.SpanID()
		b = append(b, `,"trace_id":"`...)
		b = hex.AppendEncode(b, tid[:])
		b = append(b, `","span_id":"`...)
		b = hex.AppendEncode(b, sid[:])
		return append(b, "\"}\n"...)
	}
	b = append(b, `,"trace_id":`...)
	b = appendJSONString(b, l.traceID)
	b = append(b, `,"span_id":`...)
	b = appendJSONString(b, l.spanID)
	return append(b, "}\n"...)
}

// appendMillis writes float64(us)/1e3 as appendJSONFloat would, without
// the float: below 10^12 µs (31 years) the shortest decimal of that float
// is the exact decimal of us/1000, so it is the integer part and up to
// three fraction digits, trailing zeros dropped.
func appendMillis(b []byte, us int64) []byte {
	if us < 0 || us >= 1e12 {
		return appendJSONFloat(b, float64(us)/1e3)
	}
	b = strconv.AppendInt(b, us/1000, 10)
	frac := us % 1000
	if frac == 0 {
		return b
	}
	digits := [3]byte{byte('0' + frac/100), byte('0' + frac/10%10), byte('0' + frac%10)}
	n := 3
	for digits[n-1] == '0' {
		n--
	}
	b = append(b, '.')
	return append(b, digits[:n]...)
}
