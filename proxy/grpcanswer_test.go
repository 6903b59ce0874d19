package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseGRPCTimeout(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"200m", 200 * time.Millisecond, true},
		{"1S", time.Second, true},
		{"5M", 5 * time.Minute, true},
		{"2H", 2 * time.Hour, true},
		{"99999999u", 99999999 * time.Microsecond, true},
		{"7n", 7, true},
		{"", 0, false},
		{"S", 0, false},
		{"10", 0, false},
		{"10x", 0, false},
		{"-1S", 0, false},
		{"123456789S", 0, false}, // more than 8 digits
	}
	for _, c := range cases {
		d, ok := parseGRPCTimeout(c.in)
		require.Equal(t, c.ok, ok, c.in)
		require.Equal(t, c.want, d, c.in)
	}
}

func TestGRPCAnswers(t *testing.T) {
	start := time.Now()
	h := http.Header{"Grpc-Timeout": {"100m"}}
	cases := []struct {
		name   string
		status int
		at     time.Duration
		want   int
	}{
		{"no backend", http.StatusServiceUnavailable, 0, grpcUnavailable},
		{"upstream failure before the deadline", http.StatusBadGateway, 50 * time.Millisecond, grpcUnavailable},
		{"upstream reset once the deadline passed", http.StatusBadGateway, 100 * time.Millisecond, grpcDeadlineExceeded},
		{"upstream timeout", http.StatusGatewayTimeout, 0, grpcDeadlineExceeded},
		{"body too large", http.StatusRequestEntityTooLarge, 0, grpcResourceExhausted},
		{"rate limited", http.StatusTooManyRequests, 0, grpcUnavailable},
	}
	for _, c := range cases {
		require.Equal(t, c.want, newGRPCCall(h, start).code(c.status, start.Add(c.at)), c.name)
	}
	require.Equal(t, grpcUnavailable, newGRPCCall(http.Header{}, start).code(http.StatusBadGateway, start.Add(time.Hour)), "no deadline, no DEADLINE_EXCEEDED")

	rec := httptest.NewRecorder()
	st := &reqState{ResponseWriter: rec, grpc: newGRPCCall(http.Header{}, start)}
	st.reject(http.StatusServiceUnavailable, RejectOverload, time.Second)
	require.Equal(t, http.StatusOK, rec.Code, "gRPC answers travel in a 200")
	require.Equal(t, "application/grpc", rec.Header().Get("Content-Type"))
	require.Equal(t, "14", rec.Header().Get("Grpc-Status"))
	require.Equal(t, "lbd: service unavailable (overload)", rec.Header().Get("Grpc-Message"))
	require.Equal(t, "100%25 d%C3%A9j%C3%A0 vu%0A", grpcPercentEncode("100% déjà vu\n"))
	require.Equal(t, "overload", rec.Header().Get("X-Lbd-Reject"))
	require.Equal(t, http.StatusServiceUnavailable, st.status, "logged and counted as the HTTP status it stands for")
	require.Empty(t, rec.Body.String())
}
