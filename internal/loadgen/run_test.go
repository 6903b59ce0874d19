package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbd/lbd/internal/synth"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fake is a scripted transport: reply decides each response by arrival order.
type fake struct {
	n     atomic.Int64
	reply func(i int64, r *http.Request) (*http.Response, error)
}

func (f *fake) RoundTrip(r *http.Request) (*http.Response, error) {
	return f.reply(f.n.Add(1)-1, r)
}

func (f *fake) client() *http.Client { return &http.Client{Transport: f} }

func respond(status int, hdr ...string) *http.Response {
	h := http.Header{}
	for i := 0; i+1 < len(hdr); i += 2 {
		h.Set(hdr[i], hdr[i+1])
	}
	return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader("body"))}
}

const target = "http://127.0.0.1:1/"

func TestClosedLoopCountsEveryOutcome(t *testing.T) {
	// Cycle of five: two backends answer, the proxy sheds twice, the transport fails once.
	f := &fake{reply: func(i int64, _ *http.Request) (*http.Response, error) {
		switch i % 5 {
		case 0:
			return respond(200, "X-Backend", "b1"), nil
		case 1:
			return respond(201, "X-Backend", "b2"), nil
		case 2:
			return respond(503, "X-Lbd-Reject", "overload"), nil
		case 3:
			return respond(429, "X-Lbd-Reject", "rate-limit", "Retry-After", "1"), nil
		}
		return nil, errors.New("boom")
	}}
	res, err := Run(t.Context(), Config{URL: target, N: 100, Concurrency: 4, Client: f.client()})
	require.NoError(t, err)
	require.EqualValues(t, 100, res.Sent)
	require.EqualValues(t, 80, res.Completed)
	require.EqualValues(t, 20, res.Errors)
	require.Equal(t, map[string]int64{"other": 20}, res.ErrorKinds)
	require.Equal(t, map[int]int64{200: 20, 201: 20, 503: 20, 429: 20}, res.Status)
	require.Equal(t, map[string]int64{"overload": 20, "rate-limit": 20}, res.Reject)
	require.Equal(t, map[string]int64{"b1": 20, "b2": 20, NoneKey: 40}, res.Backend)
	require.EqualValues(t, 80, res.Latency.Count)
	require.EqualValues(t, 40, res.Count2xx())
	require.Equal(t, "closed", res.Mode)
	require.Greater(t, res.Goodput, 0.0)
	require.LessOrEqual(t, res.Goodput, res.Rate)
	require.Zero(t, res.Dropped)
}

func TestRequestShape(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	f := &fake{reply: func(_ int64, r *http.Request) (*http.Response, error) {
		b, _ := io.ReadAll(r.Body) // a read error shows up as a short length below
		mu.Lock()
		seen = append(seen, r.Method+" "+r.Host+" "+r.Header.Get("X-Test")+" "+strconv.Itoa(len(b)))
		mu.Unlock()
		return respond(200), nil
	}}
	hdr := http.Header{"X-Test": {"yes"}, "Host": {"svc.test"}}
	_, err := Run(t.Context(), Config{URL: target, N: 3, Method: "PUT", BodySize: 17, Header: hdr, Client: f.client()})
	require.NoError(t, err)
	require.Equal(t, []string{"PUT svc.test yes 17", "PUT svc.test yes 17", "PUT svc.test yes 17"}, seen)
}

func TestOpenLoopDropsAtOutstandingCap(t *testing.T) {
	release := make(chan struct{})
	f := &fake{reply: func(_ int64, r *http.Request) (*http.Response, error) {
		select {
		case <-release: // held until no more arrivals will be dispatched
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
		return respond(200, "X-Backend", "b1"), nil
	}}
	cfg := Config{URL: target, N: 10, Rate: MaxRate, MaxOutstanding: 2, Client: f.client()}
	cfg.dispatched = func() { close(release) }
	res, err := Run(t.Context(), cfg)
	require.NoError(t, err)
	require.Equal(t, "open", res.Mode)
	require.EqualValues(t, 2, res.Sent)
	require.EqualValues(t, 8, res.Dropped)
	require.EqualValues(t, 2, res.Completed)
	require.Equal(t, map[string]int64{"b1": 2}, res.Backend)
}

func TestCancelReturnsPartialResult(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	f := &fake{reply: func(i int64, r *http.Request) (*http.Response, error) {
		if i == 4 {
			cancel()
			return nil, r.Context().Err()
		}
		return respond(200), nil
	}}
	res, err := Run(ctx, Config{URL: target, N: 100, Concurrency: 1, Client: f.client()})
	require.ErrorIs(t, err, context.Canceled)
	require.EqualValues(t, 5, res.Sent)
	require.EqualValues(t, 4, res.Completed)
	require.Equal(t, map[string]int64{"canceled": 1}, res.ErrorKinds)
}

func TestBackendKeysBounded(t *testing.T) {
	f := &fake{reply: func(i int64, _ *http.Request) (*http.Response, error) {
		return respond(200, "X-Backend", "b"+strconv.FormatInt(i, 10)), nil
	}}
	res, err := Run(t.Context(), Config{URL: target, N: 200, Concurrency: 1, Client: f.client()})
	require.NoError(t, err)
	require.Len(t, res.Backend, maxKeys+1)
	require.EqualValues(t, 200-maxKeys, res.Backend[OtherKey])
}

func TestNonLoopbackRefusedBeforeSending(t *testing.T) {
	f := &fake{reply: func(int64, *http.Request) (*http.Response, error) { return respond(200), nil }}
	for _, u := range []string{"http://93.184.216.34/", "http://example.com:3030/", "http://[2001:db8::1]/"} {
		res, err := Run(t.Context(), Config{URL: u, N: 1, Client: f.client()})
		require.ErrorIs(t, err, ErrNotLoopback)
		require.Nil(t, res)
	}
	require.Zero(t, f.n.Load())
}

func TestAgainstSynthBackend(t *testing.T) {
	b, err := synth.Start("127.0.0.1:0", synth.Knobs{Name: "s1", Size: 128})
	require.NoError(t, err)
	defer func() { require.NoError(t, b.Close()) }()

	tests := []struct {
		name string
		cfg  Config
	}{
		{"closed", Config{N: 200, Concurrency: 8}},
		{"open", Config{N: 100, Rate: 2000, MaxOutstanding: 100}},
		{"h2c", Config{N: 50, Concurrency: 4, H2C: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := b.Server.Requests()
			tc.cfg.URL = b.URL() + "/work"
			res, err := Run(t.Context(), tc.cfg)
			require.NoError(t, err)
			require.EqualValues(t, tc.cfg.N, res.Sent+res.Dropped, "bounded by N")
			require.Equal(t, res.Sent, res.Completed)
			require.Equal(t, res.Sent, b.Server.Requests()-before)
			require.Equal(t, map[int]int64{200: res.Sent}, res.Status)
			require.Equal(t, map[string]int64{"s1": res.Sent}, res.Backend)
			t.Logf("%s: %.0f req/s achieved, p50 %v, p99 %v", tc.name, res.Rate, res.Latency.P50, res.Latency.P99)
		})
	}
}

func TestDurationAndTimeoutBound(t *testing.T) {
	b, err := synth.Start("", synth.Knobs{Name: "slow", HangRate: 1})
	require.NoError(t, err)
	defer func() { require.NoError(t, b.Close()) }()

	// Every request hangs: the per-request timeout ends each one and the
	// duration ends the run long before N.
	res, err := Run(t.Context(), Config{URL: b.URL(), N: MaxN, Concurrency: 2, Timeout: 20 * time.Millisecond, Duration: 100 * time.Millisecond})
	require.NoError(t, err)
	require.Less(t, res.Sent, int64(MaxN))
	require.Zero(t, res.Completed)
	require.Equal(t, res.Sent, res.Errors)
	require.Equal(t, map[string]int64{"timeout": res.Sent}, res.ErrorKinds)
}

func TestOutput(t *testing.T) {
	f := &fake{reply: func(i int64, _ *http.Request) (*http.Response, error) {
		if i%2 == 0 {
			return respond(503, "X-Lbd-Reject", "no-backend"), nil
		}
		return respond(200, "X-Backend", "b1"), nil
	}}
	res, err := Run(t.Context(), Config{URL: target, N: 10, Client: f.client()})
	require.NoError(t, err)

	raw, err := json.Marshal(res)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(raw, &doc))
	for _, k := range []string{"sent", "completed", "status", "reject", "backend", "rate", "goodput", "elapsed_ms"} {
		require.Contains(t, doc, k)
	}
	require.Contains(t, doc["latency_2xx"], "p99_ms")
	require.Equal(t, map[string]any{"no-backend": 5.0}, doc["reject"])

	var buf bytes.Buffer
	require.NoError(t, res.WriteTable(&buf))
	out := buf.String()
	require.Contains(t, out, "b1: 5 (50.0%)")
	require.Contains(t, out, "no-backend: 5")
	require.Contains(t, out, "p99")
}
