package proxy

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Reject reasons, sent in X-Lbd-Reject (API.md).
const (
	RejectRateLimit = "rate-limit"
	RejectOverload  = "overload"
)

// overloadRetryAfter is the Retry-After of an overload rejection: long
// enough for a limit to move (one or two control intervals), short enough
// that a client does not give up on a briefly saturated service.
const overloadRetryAfter = time.Second

// SoftLimit is the adaptive concurrency limit the admission enforces under
// its hard cap; controller.Limiter implements it. Limit is read on every
// request and must be cheap (an atomic load); the other methods feed the
// limit's sample window and must not block.
type SoftLimit interface {
	Limit() int64
	Admitted(inflight int64)                    // a request was admitted with inflight in flight
	Rejected()                                  // a request was refused by the soft limit
	Observe(latency time.Duration, failed bool) // an admitted request completed
}

// AdmissionOptions configure NewAdmission.
type AdmissionOptions struct {
	MaxInflight int // hard cap on requests in flight; 0 means none

	// RatePerClient (tokens per second) and BurstPerClient size each
	// client's token bucket; a zero rate means no per-client limit.
	RatePerClient  float64
	BurstPerClient int
	MaxClients     int           // most clients tracked at once (default 100000)
	ClientIdle     time.Duration // a bucket unused this long may be dropped (default 5m)

	Limit SoftLimit // the adaptive limit; nil for none

	Now        func() time.Time // default time.Now
	Registerer prometheus.Registerer
}

// Admission is the data plane's Admitter: per-client token buckets, then the
// global hard cap on requests in flight, then the adaptive soft limit.
// Everything on its request path is atomics and a sharded map; it sends no
// message.
type Admission struct {
	o        AdmissionOptions
	clients  *clientLimits // nil without a per-client rate
	inflight atomic.Int64

	admitted, rateLimited, overloaded atomic.Uint64
}

// NewAdmission builds the admission and registers lbd_admission_inflight and
// lbd_admission_limit.
func NewAdmission(o AdmissionOptions) *Admission {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxClients <= 0 {
		o.MaxClients = 100_000
	}
	if o.ClientIdle <= 0 {
		o.ClientIdle = 5 * time.Minute
	}
	a := &Admission{o: o}
	if o.RatePerClient > 0 {
		a.clients = newClientLimits(o.RatePerClient, o.BurstPerClient, o.MaxClients, o.ClientIdle)
	}
	if o.Registerer != nil {
		o.Registerer.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "lbd_admission_inflight", Help: "Requests admitted and not yet finished.",
			}, func() float64 { return float64(a.inflight.Load()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "lbd_admission_limit", Help: "Requests allowed in flight: the adaptive limit, or the hard cap without one.",
			}, func() float64 { return float64(a.limit()) }),
		)
	}
	return a
}

// Admit implements Admitter.
func (a *Admission) Admit(_ *http.Request, client string) (bool, string, int, time.Duration) {
	if a.clients != nil {
		if ok, wait := a.clients.allow(client, a.o.Now()); !ok {
			a.rateLimited.Add(1)
			return false, RejectRateLimit, http.StatusTooManyRequests, wait
		}
	}
	n := a.inflight.Add(1)
	if hard := int64(a.o.MaxInflight); hard > 0 && n > hard {
		return a.overload()
	}
	if l := a.o.Limit; l != nil {
		if n > l.Limit() {
			l.Rejected()
			return a.overload()
		}
		l.Admitted(n)
	}
	a.admitted.Add(1)
	return true, "", 0, 0
}

func (a *Admission) overload() (bool, string, int, time.Duration) {
	a.inflight.Add(-1)
	a.overloaded.Add(1)
	return false, RejectOverload, http.StatusServiceUnavailable, overloadRetryAfter
}

// Done implements Admitter.
func (a *Admission) Done(latency time.Duration, failed bool) {
	a.inflight.Add(-1)
	if l := a.o.Limit; l != nil {
		l.Observe(latency, failed)
	}
}

// failedUpstream says whether an admitted request counts as a failure for
// the adaptive limit: a 5xx or timeout from upstream. lbd's own refusals
// (no-backend) say nothing about how loaded the backends are, and counting
// them would drive the limit to its floor during an outage, to climb back
// one step per interval after it.
func (s *reqState) failedUpstream() bool { return s.status >= 500 && s.rejected == "" }

// limit is the effective limit on requests in flight.
func (a *Admission) limit() int64 {
	hard := int64(a.o.MaxInflight)
	if l := a.o.Limit; l != nil && (hard == 0 || l.Limit() < hard) {
		return l.Limit()
	}
	return hard
}

// AdmissionStatus is the admission's state for /admin/metrics/json.
type AdmissionStatus struct {
	Inflight    int64 `json:"inflight"`
	Limit       int64 `json:"limit"` // effective: the adaptive limit, or the hard cap
	MaxInflight int   `json:"max_inflight"`
	Adaptive    bool  `json:"adaptive"`

	RatePerClient  float64 `json:"rate_per_client"`
	BurstPerClient int     `json:"burst_per_client"`
	Clients        int     `json:"clients"`     // tracked client buckets
	MaxClients     int     `json:"max_clients"` // most tracked at once

	Admitted          uint64 `json:"admitted"`
	RejectedRateLimit uint64 `json:"rejected_rate_limit"`
	RejectedOverload  uint64 `json:"rejected_overload"`
}

// Status returns the admission's counters and settings.
func (a *Admission) Status() AdmissionStatus {
	s := AdmissionStatus{
		Inflight: a.inflight.Load(), Limit: a.limit(), MaxInflight: a.o.MaxInflight, Adaptive: a.o.Limit != nil,
		Admitted: a.admitted.Load(), RejectedRateLimit: a.rateLimited.Load(), RejectedOverload: a.overloaded.Load(),
	}
	if a.clients != nil {
		s.RatePerClient, s.BurstPerClient = a.o.RatePerClient, a.clients.burst
		s.Clients, s.MaxClients = a.clients.len(), a.clients.capacity()
	}
	return s
}
