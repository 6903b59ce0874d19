package controller

import (
	"math"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/lbd/lbd/backendactor"
)

// Sample is one reading of lbd's Prometheus registry reduced to what an
// operator analyses offline: the totals since start and the gauges of that
// moment. It is read from the same metrics Prometheus scrapes, so a dump line
// and a Grafana panel never disagree about what happened.
type Sample struct {
	Time time.Time `json:"time"`
	Totals
	// Admission is the adaptive limit and the requests it admitted
	// (lbd_admission_*); nil when admission control exports nothing.
	Admission *AdmissionSample `json:"admission,omitempty"`
	Backends  []BackendSample  `json:"backends"`
}

// Totals are counts since lbd started.
type Totals struct {
	Requests uint64            `json:"requests"`   // every answered request, lbd's own answers included
	Errors   uint64            `json:"errors_5xx"` // of which 5xx
	Retries  uint64            `json:"retries"`
	Rejected map[string]uint64 `json:"rejected"` // by X-Lbd-Reject reason
}

// AdmissionSample is the admission controller's state at the sample.
type AdmissionSample struct {
	Inflight float64 `json:"inflight"`
	Limit    float64 `json:"limit"`
}

// BackendSample is one backend's gauges and totals at the sample.
type BackendSample struct {
	URL       string  `json:"url"`
	State     string  `json:"state"`
	Up        bool    `json:"up"`
	Breaker   string  `json:"breaker"`
	EWMAms    float64 `json:"ewma_ms"`
	Inflight  float64 `json:"inflight"`
	Requests  uint64  `json:"requests"`
	Errors    uint64  `json:"errors_5xx"`
	Ejections uint64  `json:"ejections"`
}

// noBackend is lbd_requests_total's backend label for lbd's own answers.
const noBackend = "none"

// Reduce reads a gathered registry into a Sample taken at now. Families it
// does not know are ignored; missing ones leave their fields at zero.
func Reduce(mfs []*dto.MetricFamily, now time.Time) Sample {
	s := Sample{Time: now, Totals: Totals{Rejected: map[string]uint64{}}}
	backends := map[string]*BackendSample{}
	be := func(url string) *BackendSample {
		b := backends[url]
		if b == nil {
			b = &BackendSample{URL: url}
			backends[url] = b
		}
		return b
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			backend := label(m, "backend")
			switch mf.GetName() {
			case "lbd_requests_total":
				n := count(m.GetCounter().GetValue())
				s.Requests += n
				is5xx := strings.HasPrefix(label(m, "code"), "5")
				if is5xx {
					s.Errors += n
				}
				if backend != noBackend {
					b := be(backend)
					b.Requests += n
					if is5xx {
						b.Errors += n
					}
				}
			case "lbd_retries_total":
				s.Retries += count(m.GetCounter().GetValue())
			case "lbd_rejected_total":
				s.Rejected[label(m, "reason")] += count(m.GetCounter().GetValue())
			case "lbd_admission_inflight":
				s.admission().Inflight = m.GetGauge().GetValue()
			case "lbd_admission_limit":
				s.admission().Limit = m.GetGauge().GetValue()
			case "lbd_backend_ewma_seconds":
				be(backend).EWMAms = math.Round(m.GetGauge().GetValue()*1e6) / 1e3 // to the microsecond
			case "lbd_backend_inflight":
				be(backend).Inflight = m.GetGauge().GetValue()
			case "lbd_backend_up":
				be(backend).Up = m.GetGauge().GetValue() == 1
			case "lbd_backend_state":
				if m.GetGauge().GetValue() == 1 {
					be(backend).State = label(m, "state")
				}
			case "lbd_breaker_state":
				be(backend).Breaker = backendactor.BreakerState(m.GetGauge().GetValue()).String()
			case "lbd_outlier_ejections_total":
				be(backend).Ejections = count(m.GetCounter().GetValue())
			}
		}
	}
	for _, b := range backends {
		s.Backends = append(s.Backends, *b)
	}
	slices.SortFunc(s.Backends, func(a, b BackendSample) int { return strings.Compare(a.URL, b.URL) })
	return s
}

func (s *Sample) admission() *AdmissionSample {
	if s.Admission == nil {
		s.Admission = &AdmissionSample{}
	}
	return s.Admission
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func count(v float64) uint64 { return uint64(math.Max(v, 0)) }

// Rates are per-second rates between two samples.
type Rates struct {
	Window   float64            `json:"window_s"`
	Requests float64            `json:"requests_per_s"`
	Errors   float64            `json:"errors_per_s"`
	Retries  float64            `json:"retries_per_s"`
	Rejected map[string]float64 `json:"rejected_per_s"`
	Backends map[string]float64 `json:"backend_requests_per_s"`
}

// RatesBetween returns the rates from old to cur. A counter that went
// backwards (a backend removed and added again) counts as zero.
func RatesBetween(old, cur Sample) Rates {
	dt := cur.Time.Sub(old.Time).Seconds()
	r := Rates{Window: math.Round(dt*1e3) / 1e3, Rejected: map[string]float64{}, Backends: map[string]float64{}}
	per := func(a, b uint64) float64 {
		if dt <= 0 || b < a {
			return 0
		}
		return float64(b-a) / dt
	}
	r.Requests = per(old.Requests, cur.Requests)
	r.Errors = per(old.Errors, cur.Errors)
	r.Retries = per(old.Retries, cur.Retries)
	for reason, n := range cur.Rejected {
		r.Rejected[reason] = per(old.Rejected[reason], n)
	}
	before := map[string]uint64{}
	for _, b := range old.Backends {
		before[b.URL] = b.Requests
	}
	for _, b := range cur.Backends {
		r.Backends[b.URL] = per(before[b.URL], b.Requests)
	}
	return r
}
