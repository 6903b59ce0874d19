package synth

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func serve(s *Server, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

func TestHeadersEchoWhatArrived(t *testing.T) {
	s := New(Knobs{Name: "b1", Size: 10})
	r := httptest.NewRequest(http.MethodGet, "/x", nil)
	r.Header.Set("X-Request-Id", "rid-1")
	r.Header.Add("X-Forwarded-For", "10.0.0.1")
	r.Header.Add("X-Forwarded-For", "127.0.0.1")
	r.Header.Set("X-Forwarded-Host", "example.test")
	r.Header.Set("X-Forwarded-Proto", "https")
	r.Header.Set("Traceparent", "00-abc-def-01")

	w := serve(s, r)
	require.Equal(t, http.StatusOK, w.Code)
	require.Equal(t, 10, w.Body.Len())
	h := w.Header()
	require.Equal(t, "b1", h.Get("X-Backend"))
	require.Equal(t, "rid-1", h.Get("X-Seen-Request-Id"))
	require.Equal(t, "10.0.0.1, 127.0.0.1", h.Get("X-Seen-Forwarded-For"))
	require.Equal(t, "example.test", h.Get("X-Seen-Forwarded-Host"))
	require.Equal(t, "https", h.Get("X-Seen-Forwarded-Proto"))
	require.Equal(t, "00-abc-def-01", h.Get("X-Seen-Traceparent"))
	require.Equal(t, "/x", h.Get("X-Seen-Path"))
}

func TestHealthzStatus(t *testing.T) {
	tests := []struct {
		name   string
		status int
		want   int
	}{
		{"default", 0, 200},
		{"unhealthy", 503, 503},
		{"teapot", 418, 418},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Error and hang rates never touch /healthz.
			s := New(Knobs{Name: "h", HealthStatus: tc.status, ErrorRate: 0.5, HangRate: 0.5})
			w := serve(s, httptest.NewRequest(http.MethodGet, "/healthz", nil))
			require.Equal(t, tc.want, w.Code)
			require.Equal(t, "h", w.Header().Get("X-Backend"))
			require.EqualValues(t, 1, s.HealthChecks())
			require.Zero(t, s.Requests(), "health checks are not traffic")
		})
	}
}

func TestErrorRateWithSeededRand(t *testing.T) {
	tests := []struct {
		name   string
		rate   float64
		status int
	}{
		{"none", 0, 500},
		{"tenth", 0.1, 500},
		{"half as 503", 0.5, 503},
		{"all", 1, 502},
	}
	const n = 4000
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := New(Knobs{ErrorRate: tc.rate, ErrorStatus: tc.status}, WithSeed(42))
			errs := 0
			for range n {
				w := serve(s, httptest.NewRequest(http.MethodGet, "/", nil))
				if w.Code == tc.status {
					errs++
				} else {
					require.Equal(t, http.StatusOK, w.Code)
				}
			}
			// Binomial standard deviation at n=4000 is below 0.008; allow 0.03.
			require.InDelta(t, tc.rate, float64(errs)/n, 0.03)
			require.EqualValues(t, n, s.Requests())
			require.EqualValues(t, n, s.Count(http.MethodGet))
		})
	}
}

func TestSeededDecisionsRepeat(t *testing.T) {
	k := Knobs{ErrorRate: 0.3, HangRate: 0.2, Latency: 10 * time.Millisecond, Jitter: 2 * time.Millisecond}.withDefaults()
	a, b := New(k, WithSeed(7)), New(k, WithSeed(7))
	for range 100 {
		da, la := a.draw(k)
		db, lb := b.draw(k)
		require.Equal(t, da, db)
		require.Equal(t, la, lb)
		require.GreaterOrEqual(t, la, 8*time.Millisecond)
		require.LessOrEqual(t, la, 12*time.Millisecond)
	}
}

func TestHangReleasedByClientLeaving(t *testing.T) {
	s := New(Knobs{HangRate: 1})
	ctx, cancel := context.WithCancel(t.Context())
	s.arrived = func(*http.Request) { cancel() } // the client leaves as soon as it is in
	w := serve(s, httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx))
	require.Equal(t, http.StatusServiceUnavailable, w.Code)
	require.Zero(t, s.Inflight())
}

func TestKnobsEndpoint(t *testing.T) {
	s := New(Knobs{Name: "b1", Latency: time.Millisecond})

	w := serve(s, httptest.NewRequest(http.MethodGet, "/_knobs", nil))
	require.Equal(t, http.StatusOK, w.Code)
	var got Knobs
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &got))
	require.Equal(t, s.Knobs(), got)

	w = serve(s, httptest.NewRequest(http.MethodPut, "/_knobs", strings.NewReader(`{"error_rate":1,"error_status":503}`)))
	require.Equal(t, http.StatusOK, w.Code)
	require.Equal(t, 1.0, s.Knobs().ErrorRate)
	require.Equal(t, "b1", s.Knobs().Name, "unnamed knobs are kept")
	require.Equal(t, 503, serve(s, httptest.NewRequest(http.MethodGet, "/", nil)).Code)

	tests := []struct {
		name, method, body string
		want               int
	}{
		{"bad json", http.MethodPut, `{`, 400},
		{"unknown key", http.MethodPut, `{"speed":1}`, 400},
		{"out of range", http.MethodPut, `{"hang_rate":3}`, 400},
		{"wrong method", http.MethodPost, `{}`, 405},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := serve(s, httptest.NewRequest(tc.method, "/_knobs", strings.NewReader(tc.body)))
			require.Equal(t, tc.want, w.Code)
			require.Contains(t, w.Body.String(), `"error"`)
			require.Equal(t, 1.0, s.Knobs().ErrorRate, "a rejected PUT changes nothing")
		})
	}
	require.EqualValues(t, 1, s.Requests(), "knob calls are not traffic")
}

func TestStatusPath(t *testing.T) {
	s := New(Knobs{})
	require.Equal(t, 404, serve(s, httptest.NewRequest(http.MethodGet, "/status/404", nil)).Code)
	require.Equal(t, 400, serve(s, httptest.NewRequest(http.MethodGet, "/status/abc", nil)).Code)
}

func TestClosedServerAnswers503(t *testing.T) {
	s := New(Knobs{})
	s.Close()
	s.Close()
	require.Equal(t, 503, serve(s, httptest.NewRequest(http.MethodGet, "/", nil)).Code)
}
