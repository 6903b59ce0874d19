package proxy

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func testUpstream(m *metrics, backend string) *upstream {
	return &upstream{pool: "default", backend: backend, m: m, duration: m.duration.WithLabelValues("default", backend)}
}

func TestMetricsCountByBackendCodeAndReason(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	up := testUpstream(m, "http://127.0.0.1:8081")
	pool := &Pool{name: "default", none: m.noneOf("default")}
	for _, st := range []*reqState{
		{up: up, status: 200}, {up: up, status: 200}, {up: up, status: 503},
		{up: up, status: 503, rejected: "overload", pool: pool}, // rejected after a pick: counted as lbd's answer
		{status: 429, rejected: "rate-limit", pool: pool},
		{status: 503, rejected: "made-up", pool: pool}, // an unknown reason still counts
		{status: 404, rejected: "no-route"},            // no pool at all
	} {
		m.observe(st, 3*time.Millisecond)
	}
	require.Equal(t, 2.0, testutil.ToFloat64(m.requests.WithLabelValues("default", "http://127.0.0.1:8081", "200")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.requests.WithLabelValues("default", "http://127.0.0.1:8081", "503")))
	require.Equal(t, 2.0, testutil.ToFloat64(m.requests.WithLabelValues("default", "none", "503")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.requests.WithLabelValues("none", "none", "404")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.rejected.WithLabelValues("no-route")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.rejected.WithLabelValues("overload")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.rejected.WithLabelValues("rate-limit")))
	require.Equal(t, 0.0, testutil.ToFloat64(m.rejected.WithLabelValues("no-backend")), "exported before the first reject")
	require.Equal(t, 1.0, testutil.ToFloat64(m.rejected.WithLabelValues("made-up")))
	require.Equal(t, 3, testutil.CollectAndCount(m.duration), "one histogram for the backend, one for the pool's none, one for no pool")

	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	require.Empty(t, problems)
}

func TestLatencyBucketsAreSortedAndCoverProxyLatencies(t *testing.T) {
	require.IsIncreasing(t, LatencyBuckets)
	require.LessOrEqual(t, LatencyBuckets[0], 0.001)
	require.GreaterOrEqual(t, LatencyBuckets[len(LatencyBuckets)-1], 10.0)
	for i := 1; i < len(LatencyBuckets); i++ {
		require.LessOrEqual(t, LatencyBuckets[i]/LatencyBuckets[i-1], 2.5, "no blind spot between %v and %v", LatencyBuckets[i-1], LatencyBuckets[i])
	}
}

// BenchmarkMetricsObserve is the metrics cost of one request on the hot
// path: it must report 0 allocs/op (no lock or allocation beyond the
// histogram's and counters' atomics).
//
//	go test -run '^$' -bench MetricsObserve -benchmem ./proxy/
func BenchmarkMetricsObserve(b *testing.B) {
	m := newMetrics(prometheus.NewRegistry())
	up := testUpstream(m, "http://127.0.0.1:8081")
	cases := []struct {
		name     string
		up       *upstream
		status   int
		rejected string
	}{
		{"proxied", up, 200, ""},
		{"rejected", nil, 503, "overload"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				st := &reqState{up: c.up, status: c.status, rejected: c.rejected}
				for pb.Next() {
					m.observe(st, 1500*time.Microsecond)
				}
			})
		})
	}
}
