package proxy

import (
	"net/http"
	"sync"
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

// AdmissionOptions configure NewAdmission, and Reconfigure later.
type AdmissionOptions struct {
	MaxInflight int // hard cap on requests in flight; 0 means none

	// RatePerClient (tokens per second) and BurstPerClient size each
	// client's token bucket; a zero rate means no per-client limit.
	RatePerClient  float64
	BurstPerClient int
	MaxClients     int           // most clients tracked at once (default 100000)
	ClientIdle     time.Duration // a bucket unused this long may be dropped (default 5m)

	Limit SoftLimit // the adaptive limit; nil for none

	// Now and Registerer are taken by NewAdmission only.
	Now        func() time.Time // default time.Now
	Registerer prometheus.Registerer
}

// Admission is the data plane's Admitter: per-client token buckets, then the
// global hard cap on requests in flight, then the adaptive soft limit.
// Everything on its request path is atomics and a sharded map; it sends no
// message. Its settings are one immutable generation behind an atomic
// pointer, which Reconfigure replaces while requests run; the count of
// requests in flight is the Admission's own and spans generations.
type Admission struct {
	now      func() time.Time
	gen      atomic.Pointer[admissionGen]
	inflight atomic.Int64
	// uploading counts the admitted requests still receiving their body
	// from the client (Ticket.Upload). They count against the hard cap but
	// not against the adaptive limit, which governs what it measures: the
	// time from the end of the request body to the response headers.
	// Counted against it, clients sending bodies slowly could hold every
	// place of a limit that an earlier latency spike had lowered, and with
	// nothing completing, no sample would ever raise it again.
	uploading atomic.Int64
	mu        sync.Mutex // serialises Reconfigure; the request path never takes it

	admitted, rateLimited, overloaded atomic.Uint64
}

// admissionGen is one generation of settings, never changed once
// published. It is also the Ticket of the requests it admitted, so that
// each tells the soft limit that counted it.
type admissionGen struct {
	a       *Admission
	o       AdmissionOptions // with the defaults filled in
	clients *clientLimits    // nil without a per-client rate
}

// NewAdmission builds the admission and registers lbd_admission_inflight and
// lbd_admission_limit. Settings Reconfigure would refuse are taken as
// they are (the config package validates them first).
func NewAdmission(o AdmissionOptions) *Admission {
	a := &Admission{now: o.Now}
	if a.now == nil {
		a.now = time.Now
	}
	reg := o.Registerer
	o = withAdmissionDefaults(o)
	g := &admissionGen{a: a, o: o}
	if o.RatePerClient > 0 {
		g.clients = newClientLimits(o.RatePerClient, o.BurstPerClient, o.MaxClients, o.ClientIdle)
	}
	a.gen.Store(g)
	if reg != nil {
		reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "lbd_admission_inflight", Help: "Requests admitted and not yet finished.",
			}, func() float64 { return float64(a.inflight.Load()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "lbd_admission_limit", Help: "Requests allowed in flight: the adaptive limit, or the hard cap without one.",
			}, func() float64 { return float64(a.gen.Load().limit()) }),
		)
	}
	return a
}

func withAdmissionDefaults(o AdmissionOptions) AdmissionOptions {
	if o.MaxClients <= 0 {
		o.MaxClients = 100_000
	}
	if o.ClientIdle <= 0 {
		o.ClientIdle = 5 * time.Minute
	}
	o.Now, o.Registerer = nil, nil
	return o
}

// Admit implements Admitter.
func (a *Admission) Admit(_ *http.Request, client string) (Ticket, string, int, time.Duration) {
	g := a.gen.Load()
	if g.clients != nil {
		if ok, wait := g.clients.allow(client, a.now()); !ok {
			a.rateLimited.Add(1)
			return nil, RejectRateLimit, http.StatusTooManyRequests, wait
		}
	}
	n := a.inflight.Add(1)
	if hard := int64(g.o.MaxInflight); hard > 0 && n > hard {
		return a.overload()
	}
	if l := g.o.Limit; l != nil {
		soft := n - a.uploading.Load()
		if soft > l.Limit() {
			l.Rejected()
			return a.overload()
		}
		l.Admitted(soft)
	}
	a.admitted.Add(1)
	return g, "", 0, 0
}

func (a *Admission) overload() (Ticket, string, int, time.Duration) {
	a.inflight.Add(-1)
	a.overloaded.Add(1)
	return nil, RejectOverload, http.StatusServiceUnavailable, overloadRetryAfter
}

// Done implements Ticket: the request admitted under g is over. Its latency
// goes to g's soft limit, the one that admitted it, even when Reconfigure
// has swapped it since.
func (g *admissionGen) Done(latency time.Duration, failed bool) {
	g.a.inflight.Add(-1)
	if l := g.o.Limit; l != nil {
		l.Observe(latency, failed)
	}
}

// Leave implements Ticket: the request is over and gives no sample.
func (g *admissionGen) Leave() { g.a.inflight.Add(-1) }

// Upload implements Ticket: the request's body is still arriving (true),
// or no longer (false).
func (g *admissionGen) Upload(started bool) {
	if started {
		g.a.uploading.Add(1)
	} else {
		g.a.uploading.Add(-1)
	}
}

// failedUpstream says whether an admitted request counts as a failure for
// the adaptive limit: a 5xx or timeout from upstream. lbd's own refusals
// (no-backend) say nothing about how loaded the backends are, and counting
// them would drive the limit to its floor during an outage, to climb back
// one step per interval after it.
func (s *reqState) failedUpstream() bool { return s.status >= 500 && s.rejected == "" }

// limit is the effective limit on requests in flight.
func (g *admissionGen) limit() int64 {
	hard := int64(g.o.MaxInflight)
	if l := g.o.Limit; l != nil && (hard == 0 || l.Limit() < hard) {
		return l.Limit()
	}
	return hard
}

// AdmissionStatus is the admission's state for /admin/metrics/json.
type AdmissionStatus struct {
	Inflight    int64 `json:"inflight"`
	Uploading   int64 `json:"uploading"` // of those, still receiving their body: outside the adaptive limit
	Limit       int64 `json:"limit"`     // effective: the adaptive limit, or the hard cap
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
	g := a.gen.Load()
	s := AdmissionStatus{
		Inflight: a.inflight.Load(), Uploading: a.uploading.Load(), Limit: g.limit(), MaxInflight: g.o.MaxInflight, Adaptive: g.o.Limit != nil,
		Admitted: a.admitted.Load(), RejectedRateLimit: a.rateLimited.Load(), RejectedOverload: a.overloaded.Load(),
	}
	if g.clients != nil {
		s.RatePerClient, s.BurstPerClient = g.o.RatePerClient, g.clients.burst
		s.Clients, s.MaxClients = g.clients.len(), g.clients.capacity()
	}
	return s
}
