package fleet

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the link's Prometheus series; without a Registerer they are
// still counted, just not exported.
type metrics struct {
	connected prometheus.Gauge
	revision  prometheus.Gauge
	changes   prometheus.Counter
	resyncs   prometheus.Counter
	commits   *prometheus.CounterVec
}

var commitResults = []string{"ok", "conflict", "unavailable", "invalid", "error"}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lbd_fleet_connected",
			Help: "1 while the fleet link has a live etcd session (listed, watching, registered), else 0.",
		}),
		revision: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lbd_fleet_revision",
			Help: "The etcd revision of the shared state this replica has applied.",
		}),
		changes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lbd_fleet_changes_applied_total",
			Help: "Changes (watch events under the prefix, registry left out) this replica has applied.",
		}),
		resyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lbd_fleet_resyncs_total",
			Help: "Times the whole shared state was listed and applied (start, reconnection, compaction).",
		}),
		commits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lbd_fleet_commits_total",
			Help: "Commits to etcd by result (ok, conflict, unavailable, invalid, error).",
		}, []string{"result"}),
	}
	for _, r := range commitResults {
		m.commits.WithLabelValues(r)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.connected, m.revision, m.changes, m.resyncs, m.commits} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("fleet metrics: %w", err)
			}
		}
	}
	return m, nil
}

func (m *metrics) commit(result string) { m.commits.WithLabelValues(result).Inc() }
