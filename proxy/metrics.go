package proxy

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// LatencyBuckets are the request-duration histogram buckets in seconds: from
// 0.5 ms (a loopback hop) to 10 s (a slow upstream), dense around 1-250 ms
// where proxy latency targets usually sit (AIMD's default target is 100 ms,
// so p90/p99 around it fall between neighbouring buckets at most 2.5x
// apart). 14 buckets x backends keeps the series count small.
var LatencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// metrics are the data plane's Prometheus collectors. Per-backend children
// are resolved once per backend and status code and then cached, and the
// reject reasons once at start, so the request path pays atomic adds only:
// no lock and no allocation beyond the histogram's and counters' own atomics
// (BenchmarkMetricsObserve).
type metrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	retries       prometheus.Counter
	rejected      *prometheus.CounterVec
	routeRequests *prometheus.CounterVec
	rejectedBy    map[string]prometheus.Counter // read-only after newMetrics
	none          *upstream                     // label holder for requests that matched no route
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lbd_requests_total", Help: "Requests answered, by pool and backend (\"none\" when lbd answered itself) and status code.",
		}, []string{"pool", "backend", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lbd_request_duration_seconds", Help: "Time from request arrival to the end of the response, by pool and backend.",
			Buckets: LatencyBuckets,
		}, []string{"pool", "backend"}),
		routeRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lbd_route_requests_total", Help: "Requests each route matched (by its name, or its index when it has none).",
		}, []string{"route"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lbd_retries_total", Help: "Requests sent again to another backend.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lbd_rejected_total", Help: "Requests lbd answered itself without a backend, by reason.",
		}, []string{"reason"}),
	}
	// API.md's X-Lbd-Reject reasons, exported at 0 from the start so that
	// rate() works before the first reject.
	reasons := []string{RejectRateLimit, RejectOverload, RejectNoBackend, RejectNoRoute, RejectBodyTooLarge,
		RejectBadBody, RejectClientStall, RejectConnect, RejectURITooLong, RejectTooManyHeaders, RejectLoop}
	m.rejectedBy = make(map[string]prometheus.Counter, len(reasons))
	for _, r := range reasons {
		m.rejectedBy[r] = m.rejected.WithLabelValues(r)
	}
	m.none = m.noneOf("none")
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.retries, m.rejected, m.routeRequests)
	}
	return m
}

// noneOf is the label holder for a pool's requests that reached no backend.
func (m *metrics) noneOf(pool string) *upstream {
	return &upstream{pool: pool, backend: "none", m: m, duration: m.duration.WithLabelValues(pool, "none")}
}

type counterBox struct{ c prometheus.Counter }

// statusCodes caches one counter per status code per upstream.
type statusCodes [600]atomic.Pointer[counterBox]

func (m *metrics) observe(st *reqState, d time.Duration) {
	if st.rejected != "" {
		if c, ok := m.rejectedBy[st.rejected]; ok {
			c.Inc()
		} else {
			m.rejected.WithLabelValues(st.rejected).Inc()
		}
	}
	up := m.none
	switch {
	case st.up != nil && st.rejected == "":
		up = st.up
	case st.pool != nil:
		up = st.pool.none
	}
	observeDuration(up.duration, d, st)
	up.count(st.status)
}

// observeDuration records a request's latency, with its trace id as the
// exemplar when its trace was recorded, so that a dashboard can go from a
// latency bucket to a trace of a request in it.
func observeDuration(o prometheus.Observer, d time.Duration, st *reqState) {
	if tid, ok := st.sampledTraceID(); ok {
		if eo, ok := o.(prometheus.ExemplarObserver); ok {
			eo.ObserveWithExemplar(d.Seconds(), prometheus.Labels{"trace_id": tid})
			return
		}
	}
	o.Observe(d.Seconds())
}

func (u *upstream) count(code int) {
	if code < 100 || code >= len(u.codeCache) {
		u.m.requests.WithLabelValues(u.pool, u.backend, strconv.Itoa(code)).Inc()
		return
	}
	b := u.codeCache[code].Load()
	if b == nil {
		b = &counterBox{u.m.requests.WithLabelValues(u.pool, u.backend, strconv.Itoa(code))}
		u.codeCache[code].Store(b)
	}
	b.c.Inc()
}
