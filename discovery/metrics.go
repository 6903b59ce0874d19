package discovery

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the discovery metrics, shared by every source of one lbd
// (one registration, one label set per source). Labels are bounded by the
// config: pool and source come from it, result is one of the Result*
// constants.
type Metrics struct {
	lookups     *prometheus.CounterVec
	members     *prometheus.GaugeVec
	lastSuccess *prometheus.GaugeVec
	staleSince  *prometheus.GaugeVec
}

// NewMetrics registers the discovery metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	labels := []string{"pool", "source"}
	m := &Metrics{
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lbd_discovery_lookups_total",
			Help: "DNS lookups of a discovery source by result (success, empty, nxdomain, timeout, servfail, refused, error).",
		}, append(labels, "result")),
		members: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lbd_discovery_members",
			Help: "Members in a discovery source's last good set.",
		}, labels),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lbd_discovery_last_success_timestamp_seconds",
			Help: "Unix time of a discovery source's last believed answer (0: none yet).",
		}, labels),
		staleSince: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lbd_discovery_stale_since_timestamp_seconds",
			Help: "Unix time since which a discovery source's set is not confirmed by its lookups (0: current).",
		}, labels),
	}
	for _, c := range []prometheus.Collector{m.lookups, m.members, m.lastSuccess, m.staleSince} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("discovery metrics: %w", err)
		}
	}
	return m, nil
}

// sourceMetrics is one source's series; every method is a no-op on a nil
// receiver, for a source without metrics. The children are looked up at
// each write rather than kept: if a source of the same name replaces this
// one while this one's remove runs, the series come back at its next write.
type sourceMetrics struct {
	m            *Metrics
	pool, source string
}

func (m *Metrics) source(pool, source string) *sourceMetrics {
	if m == nil {
		return nil
	}
	s := &sourceMetrics{m: m, pool: pool, source: source}
	for _, r := range lookupResults { // every result at 0, so rate() sees the first one
		m.lookups.WithLabelValues(pool, source, r)
	}
	m.members.WithLabelValues(pool, source)
	m.lastSuccess.WithLabelValues(pool, source)
	m.staleSince.WithLabelValues(pool, source)
	return s
}

// lookup counts a lookup and sets the gauges; times are Unix seconds, 0 for none.
func (s *sourceMetrics) lookup(result string, members int, lastSuccess, staleSince float64) {
	if s == nil {
		return
	}
	s.m.lookups.WithLabelValues(s.pool, s.source, result).Inc()
	s.m.members.WithLabelValues(s.pool, s.source).Set(float64(members))
	s.m.lastSuccess.WithLabelValues(s.pool, s.source).Set(lastSuccess)
	s.m.staleSince.WithLabelValues(s.pool, s.source).Set(staleSince)
}

// remove deletes the source's series when it stops: a source removed from
// the config must not report forever.
func (s *sourceMetrics) remove() {
	if s == nil {
		return
	}
	l := prometheus.Labels{"pool": s.pool, "source": s.source}
	s.m.lookups.DeletePartialMatch(l)
	s.m.members.DeletePartialMatch(l)
	s.m.lastSuccess.DeletePartialMatch(l)
	s.m.staleSince.DeletePartialMatch(l)
}
