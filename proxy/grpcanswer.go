package proxy

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// A gRPC client reads an HTTP error status as a transport failure
// (502/503/504 all become UNAVAILABLE, with the HTTP status as the message),
// and cannot tell lbd's refusal from a deadline. So when lbd itself answers
// a gRPC call, it answers in gRPC: HTTP 200 with a Trailers-Only response
// whose grpc-status and grpc-message say what happened. The access log and
// lbd_requests_total still record the HTTP status lbd would otherwise have
// sent, so error ratios include these calls.

// gRPC status codes lbd answers with.
const (
	grpcDeadlineExceeded  = 4
	grpcResourceExhausted = 8
)

// grpcCall is what lbd knows of a gRPC call for answering it.
type grpcCall struct {
	deadline time.Time // zero without grpc-timeout
}

func newGRPCCall(h http.Header, start time.Time) *grpcCall {
	c := &grpcCall{}
	if d, ok := parseGRPCTimeout(h.Get("Grpc-Timeout")); ok {
		c.deadline = start.Add(d)
	}
	return c
}

// parseGRPCTimeout reads a grpc-timeout header: up to 8 digits and a unit
// (H, M, S, m, u, n), as the gRPC over HTTP/2 spec defines it.
func parseGRPCTimeout(v string) (time.Duration, bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	n, err := strconv.ParseInt(v[:len(v)-1], 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	units := map[byte]time.Duration{'H': time.Hour, 'M': time.Minute, 'S': time.Second,
		'm': time.Millisecond, 'u': time.Microsecond, 'n': time.Nanosecond}
	u, ok := units[v[len(v)-1]]
	if !ok {
		return 0, false
	}
	return time.Duration(n) * u, true
}

// grpcCode maps lbd's own HTTP answer to the gRPC status a client should
// see: a refusal for size is RESOURCE_EXHAUSTED; a timeout, or any upstream
// failure once the call's own deadline has passed (the backend reset the
// stream because it ran out of time), is DEADLINE_EXCEEDED; everything else
// (no backend, overload, rate limit, upstream failure) is UNAVAILABLE, which
// gRPC clients may retry.
func (c *grpcCall) code(status int, now time.Time) int {
	switch {
	case status == http.StatusRequestEntityTooLarge:
		return grpcResourceExhausted
	case status == http.StatusGatewayTimeout, !c.deadline.IsZero() && !now.Before(c.deadline):
		return grpcDeadlineExceeded
	}
	return grpcUnavailable
}

func (s *reqState) grpcFail(status int, reason string) {
	msg := "lbd: " + strings.ToLower(http.StatusText(status))
	if reason != "" {
		msg += " (" + reason + ")"
	}
	h := s.Header()
	h.Set("Content-Type", "application/grpc")
	h.Set("Grpc-Status", strconv.Itoa(s.grpc.code(status, time.Now())))
	h.Set("Grpc-Message", grpcPercentEncode(msg))
	h.Del("Content-Length")
	s.ResponseWriter.WriteHeader(http.StatusOK)
	s.status, s.wrote = status, true
}

// grpcPercentEncode encodes a grpc-message as the gRPC spec asks: '%' and
// bytes outside printable ASCII become %XX; everything else stays readable.
func grpcPercentEncode(msg string) string {
	var b strings.Builder
	for i := 0; i < len(msg); i++ {
		if c := msg[i]; c < 0x20 || c > 0x7e || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}
