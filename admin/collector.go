package admin

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbd/lbd/actor"
	"github.com/lbd/lbd/backendactor"
)

// Collector exports the backends' and actors' state at scrape time, read
// from published snapshots and the registry's atomics: the request path pays
// nothing for these metrics.
type Collector struct {
	ctl Control
	reg *actor.Registry

	inflight, ewma, up, state, breaker *prometheus.Desc
	mailbox, mailboxCap, messages      *prometheus.Desc
	restarts, dropped                  *prometheus.Desc
}

// NewCollector returns a collector over every pool's backends and the registry's actors.
func NewCollector(ctl Control, reg *actor.Registry) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &Collector{
		ctl: ctl, reg: reg,
		inflight:   d("lbd_backend_inflight", "Requests in flight to the backend.", "pool", "backend"),
		ewma:       d("lbd_backend_ewma_seconds", "Peak-EWMA latency to response headers.", "pool", "backend"),
		up:         d("lbd_backend_up", "1 when the backend is eligible for new requests.", "pool", "backend"),
		state:      d("lbd_backend_state", "1 for the backend's current state.", "pool", "backend", "state"),
		breaker:    d("lbd_breaker_state", "Circuit breaker: 0 closed, 1 open, 2 half-open.", "pool", "backend"),
		mailbox:    d("lbd_actor_mailbox_depth", "Messages waiting in the actor's mailbox.", "actor"),
		mailboxCap: d("lbd_actor_mailbox_capacity", "Capacity of the actor's mailbox.", "actor"),
		messages:   d("lbd_actor_messages_total", "Messages the actor has processed.", "actor"),
		restarts:   d("lbd_actor_restarts_total", "Times the actor's supervisor recovered it from a panic.", "actor"),
		dropped:    d("lbd_actor_dropped_total", "Messages refused because the mailbox was full.", "actor"),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.inflight, c.ewma, c.up, c.state, c.breaker, c.mailbox, c.mailboxCap, c.messages, c.restarts, c.dropped} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	g := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	for _, p := range c.ctl.Table().Pools {
		sched, ok := c.ctl.Scheduler(p.Name)
		if !ok {
			continue
		}
		for _, h := range sched.Picker().Backends() {
			s, u := h.Snapshot(), h.URL()
			g(c.inflight, float64(h.Inflight()), p.Name, u)
			g(c.ewma, s.EWMA.Seconds(), p.Name, u)
			g(c.up, b2f(s.Eligible), p.Name, u)
			for _, st := range backendactor.States {
				g(c.state, b2f(s.State == st), p.Name, u, st)
			}
			g(c.breaker, float64(s.Breaker), p.Name, u)
		}
	}
	for _, a := range c.reg.Snapshot() {
		g(c.mailbox, float64(a.MailboxLen), a.Name)
		g(c.mailboxCap, float64(a.MailboxCap), a.Name)
		ch <- prometheus.MustNewConstMetric(c.messages, prometheus.CounterValue, float64(a.Processed), a.Name)
		ch <- prometheus.MustNewConstMetric(c.restarts, prometheus.CounterValue, float64(a.Restarts), a.Name)
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(a.Dropped), a.Name)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
