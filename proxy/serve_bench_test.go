package proxy

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/actor"
	"github.com/lbd/lbd/backendactor"
	"github.com/lbd/lbd/scheduler"
)

// benchHandler is a data plane over one loopback backend answering 64
// bytes, with lbd's default client limits.
func benchHandler(b *testing.B) *Handler {
	b.Helper()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = w.Write(make([]byte, 64))
	}))
	b.Cleanup(backend.Close)
	s, err := scheduler.New(scheduler.Config{Policy: scheduler.P2CEWMA, Registry: actor.NewRegistry(), Logger: slog.New(slog.DiscardHandler),
		Backend: backendactor.Config{Breaker: backendactor.BreakerConfig{FailureThreshold: 5, OpenFor: time.Second}}})
	require.NoError(b, err)
	b.Cleanup(func() { _ = s.Stop(context.Background()) })
	_, err = s.Add(context.Background(), scheduler.Spec{URL: backend.URL, Weight: 1, Initial: true})
	require.NoError(b, err)
	h := New(Options{Scheduler: s, Retries: RetryOptions{Max: 1, BudgetPercent: 20, MinPerSecond: 10, BufferBodyBytes: 64 << 10},
		Logger: slog.New(slog.DiscardHandler)})
	h.SetLive(Live{ClientStall: time.Minute, MaxHeaderCount: 100, MaxURIBytes: 8 << 10})
	b.Cleanup(h.Close)
	return h
}

// BenchmarkServeHTTP is one request through the whole data plane, the
// backend's loopback round trip included (it dominates; the figures to
// compare are the allocations and the difference between two builds).
func BenchmarkServeHTTP(b *testing.B) {
	h := benchHandler(b)
	body := strings.Repeat("x", 1024)
	for _, c := range []struct {
		name, method, body string
	}{{"GET", http.MethodGet, ""}, {"POST-1KiB", http.MethodPost, body}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var rd io.Reader
				if c.body != "" {
					rd = strings.NewReader(c.body)
				}
				r := httptest.NewRequest(c.method, "/", rd)
				r.Header.Set("User-Agent", "bench")
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}
