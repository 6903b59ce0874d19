package controller

import "github.com/prometheus/client_golang/prometheus"

// advisoryDescs are the advisory's Prometheus series, read from the
// published report at scrape time. The backend label is a backend URL or
// "overall".
type advisoryDescs struct{ warning, current, baseline *prometheus.Desc }

func newAdvisoryDescs() advisoryDescs {
	return advisoryDescs{
		warning: prometheus.NewDesc("lbd_advisory_warning",
			"1 while the scaling advisory warns: latency more than the threshold (15%) above its baseline.", []string{"backend"}, nil),
		current: prometheus.NewDesc("lbd_advisory_current_seconds",
			"The advisory's current latency: a 10s EWMA of the backend's peak-EWMA (overall: their mean).", []string{"backend"}, nil),
		baseline: prometheus.NewDesc("lbd_advisory_baseline_seconds",
			"The advisory's baseline latency: a slow EWMA of current, frozen while warning.", []string{"backend"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (a *Advisory) Describe(ch chan<- *prometheus.Desc) {
	ch <- a.descs.warning
	ch <- a.descs.current
	ch <- a.descs.baseline
}

// Collect implements prometheus.Collector.
func (a *Advisory) Collect(ch chan<- prometheus.Metric) {
	r := a.Report()
	emit := func(t TrendReport) {
		w := 0.0
		if t.Warning {
			w = 1
		}
		ch <- prometheus.MustNewConstMetric(a.descs.warning, prometheus.GaugeValue, w, t.Backend)
		ch <- prometheus.MustNewConstMetric(a.descs.current, prometheus.GaugeValue, t.CurrentMs/1e3, t.Backend)
		ch <- prometheus.MustNewConstMetric(a.descs.baseline, prometheus.GaugeValue, t.BaselineMs/1e3, t.Backend)
	}
	emit(r.Overall)
	for _, t := range r.Backends {
		emit(t)
	}
}
