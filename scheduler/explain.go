package scheduler

import (
	"net/http"
	"time"

	"github.com/lbd/lbd/backendactor"
)

// Reasons a candidate was not eligible for a request, as the tap names them.
const (
	ReasonDraining    = "draining"
	ReasonEjected     = "ejected"
	ReasonUnhealthy   = "unhealthy"
	ReasonBreakerOpen = "breaker_open"
	ReasonHalfOpen    = "half_open_busy" // half-open, and its probe quota is taken
	ReasonCapped      = "capped"         // at its max_inflight
	ReasonTried       = "tried"          // this request failed on it already
)

// How a pick was made.
const (
	ByPolicy = "policy"
	BySticky = "sticky"
	ByCanary = "canary"
)

// Explanation says why a pick went where it did: every backend of the
// pool as the pick saw it, which the policy could choose and why the
// others not, the policy's figures, and for p2c-ewma the two it drew. Only
// PickExplain fills one (the tap); Pick never pays for it.
type Explanation struct {
	Policy string
	By     string // ByPolicy, BySticky or ByCanary; "" when nothing was chosen
	// Candidates are every backend of the pool, in configuration order.
	Candidates []Candidate
	refused    []*backendactor.Handle // drawn, but the handle refused the slot
	sampled    [2]*backendactor.Handle
	costs      [2]float64
}

// Candidate is one backend as one pick saw it.
type Candidate struct {
	Handle   *backendactor.Handle
	Eligible bool
	Reason   string // why it was not eligible (the Reason* constants)
	State    string // the backend's state (healthy, warming, ...)
	// Cost is the policy's figure, lower is better: p2c-ewma's EWMA
	// (ns, +1µs) x (in flight + 1) / effective weight, lc's (in flight +
	// 1) / effective weight; 0 for rr and wrr, which have none.
	Cost       float64
	EWMA       time.Duration // the latency estimate as of the pick (an aging one decayed)
	Inflight   int64         // before this request took its slot
	Weight     int
	WarmFactor float64
	Sampled    bool // one of the two p2c-ewma drew
	Chosen     bool
	Canary     bool
}

// PickExplain is Pick, and fills ex with why. It takes the same path as
// Pick, with the same randomness, so the explanation is of the decision
// itself, not of a second one made to explain it.
func (p *Picker) PickExplain(r *http.Request, client string, tried []*backendactor.Handle, ex *Explanation) (*backendactor.Handle, error) {
	ex.Policy, ex.By = p.name, ""
	ex.refused, ex.sampled = ex.refused[:0], [2]*backendactor.Handle{}
	if cap(ex.Candidates) < len(p.all) {
		ex.Candidates = make([]Candidate, 0, len(p.all))
	}
	ex.Candidates = ex.Candidates[:0]
	now := &lazyNow{clock: p.now}
	for _, h := range p.all {
		s := h.Snapshot()
		ex.Candidates = append(ex.Candidates, Candidate{
			Handle: h, State: s.State, EWMA: agingLatency(h, s, now), Inflight: h.Inflight(), Weight: s.Weight,
			WarmFactor: s.WarmFactor, Cost: p.cost(h, now), Canary: h == p.canary,
		})
	}
	h, err := p.pick(r, client, tried, ex)
	for i := range ex.Candidates {
		c := &ex.Candidates[i]
		c.Chosen = c.Handle == h && h != nil
		c.Reason = p.reason(c, tried, ex.refused)
		c.Eligible = c.Reason == ""
		for j, sh := range ex.sampled {
			if c.Handle == sh {
				c.Sampled, c.Cost = true, ex.costs[j]
			}
		}
	}
	return h, err
}

// cost is the policy's figure for h now (see Candidate.Cost).
func (p *Picker) cost(h *backendactor.Handle, now *lazyNow) float64 {
	switch p.policy {
	case kindP2C:
		s := h.Snapshot()
		return p2cCost(agingLatency(h, s, now), h, s)
	case kindLC:
		return float64(h.Inflight()+1) / h.Snapshot().EffectiveWeight()
	}
	return 0
}

// reason says why c could not be chosen, or "" if it could.
func (p *Picker) reason(c *Candidate, tried, refused []*backendactor.Handle) string {
	s := c.Handle.Snapshot()
	switch {
	case s.State == backendactor.StateDraining:
		return ReasonDraining
	case s.State == backendactor.StateEjected:
		return ReasonEjected
	case s.State == backendactor.StateUnhealthy:
		return ReasonUnhealthy
	case s.Breaker == backendactor.Open:
		return ReasonBreakerOpen
	case contains(tried, c.Handle):
		return ReasonTried
	case contains(refused, c.Handle) && s.Breaker == backendactor.HalfOpen:
		return ReasonHalfOpen
	case contains(refused, c.Handle) || (s.MaxInflight > 0 && c.Inflight >= s.MaxInflight && !c.Chosen):
		return ReasonCapped
	case !s.Eligible:
		return s.State
	}
	return ""
}

// The explain hooks of the pick: each is a nil check when Pick runs.

func (ex *Explanation) by(how string) {
	if ex != nil {
		ex.By = how
	}
}

func (ex *Explanation) refuse(h *backendactor.Handle) {
	if ex != nil {
		ex.refused = append(ex.refused, h)
	}
}

func (ex *Explanation) sample(a, b *backendactor.Handle, now *lazyNow) {
	if ex != nil {
		sa, sb := a.Snapshot(), b.Snapshot()
		ex.sampled = [2]*backendactor.Handle{a, b}
		ex.costs = [2]float64{p2cCost(agingLatency(a, sa, now), a, sa), p2cCost(agingLatency(b, sb, now), b, sb)}
	}
}
