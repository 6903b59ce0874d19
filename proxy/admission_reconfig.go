package proxy

import (
	"fmt"
	"math"
)

// Reconfigure replaces the admission's settings while requests run: the
// request path loads the new generation with one atomic load, and nothing
// it does waits for Reconfigure. Settings it cannot run with change
// nothing; Now and Registerer stay those of NewAdmission.
//
//   - MaxInflight: the next admissions; requests already in flight count
//     against the new cap (a cap lowered under them refuses new requests
//     until enough finish) and none is cut short.
//   - Limit (the soft limit): swapped for the next admissions, nil <-> a
//     limiter or one for another. A request admitted before reports its end
//     to the limit that admitted it, through its Ticket, so neither limit's
//     window gets samples the other counted, and the in-flight count, which
//     the Admission keeps across generations, never goes negative or leaks.
//   - RatePerClient, BurstPerClient, MaxClients, ClientIdle: unchanged, the
//     client buckets are kept as they are. Changed, they move to a new
//     table with the new settings, the most recently seen first (see
//     clientLimits.adopt): each client keeps its debt, refilling at the new
//     rate up to the new burst; those beyond a smaller MaxClients, the least
//     recent, and those idle longer than the new ClientIdle are dropped and
//     start again with a full burst. A rate of 0 turns the per-client limit
//     off and drops every bucket.
func (a *Admission) Reconfigure(o AdmissionOptions) error {
	if err := validAdmission(o); err != nil {
		return err
	}
	o = withAdmissionDefaults(o)
	a.mu.Lock()
	defer a.mu.Unlock()
	old := a.gen.Load()
	g := &admissionGen{a: a, o: o}
	switch {
	case o.RatePerClient <= 0:
	case old.clients != nil && old.clients.same(o.RatePerClient, o.BurstPerClient, o.MaxClients, o.ClientIdle):
		g.clients = old.clients
	default:
		g.clients = newClientLimits(o.RatePerClient, o.BurstPerClient, o.MaxClients, o.ClientIdle)
		if old.clients != nil {
			g.clients.adopt(old.clients, a.now())
		}
	}
	a.gen.Store(g)
	return nil
}

func validAdmission(o AdmissionOptions) error {
	switch {
	case o.MaxInflight < 0:
		return fmt.Errorf("admission max_inflight must not be negative, got %d", o.MaxInflight)
	case o.RatePerClient < 0 || math.IsNaN(o.RatePerClient) || math.IsInf(o.RatePerClient, 0):
		return fmt.Errorf("admission rate_per_client must be a finite number of requests per second, 0 or more, got %v", o.RatePerClient)
	case o.BurstPerClient < 0:
		return fmt.Errorf("admission burst_per_client must not be negative, got %d", o.BurstPerClient)
	case o.MaxClients < 0:
		return fmt.Errorf("admission max_clients must not be negative, got %d", o.MaxClients)
	case o.ClientIdle < 0:
		return fmt.Errorf("admission client_idle must not be negative, got %v", o.ClientIdle)
	}
	return nil
}
