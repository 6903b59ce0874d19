package scheduler

import (
	"time"

	"github.com/lbd/lbd/backendactor"
)

// pickRR walks the backends in order. A warming backend is passed over with
// probability 1-warmFactor, which ramps its share like a weight would.
func (p *Picker) pickRR(skip []*backendactor.Handle) *backendactor.Handle {
	n := uint64(len(p.backends))
	for range 2 * n {
		h := p.backends[(p.cursor.Add(1)-1)%n]
		if s, ok := usable(h, skip); ok && p.chance(s.WarmFactor) {
			return h
		}
	}
	return p.firstUsable(skip)
}

// pickWRR follows the precomputed smooth weighted cycle (see smoothCycle),
// stepping past entries that are not usable right now.
func (p *Picker) pickWRR(skip []*backendactor.Handle) *backendactor.Handle {
	n := uint64(len(p.seq))
	for range n {
		h := p.backends[p.seq[(p.cursor.Add(1)-1)%n]]
		if _, ok := usable(h, skip); ok {
			return h
		}
	}
	return p.firstUsable(skip)
}

// pickLC takes the backend with the fewest requests in flight per unit of
// effective weight. It counts requests, not connections (a WebSocket is one
// long request). Ties are broken uniformly by reservoir sampling.
func (p *Picker) pickLC(skip []*backendactor.Handle) *backendactor.Handle {
	var best *backendactor.Handle
	var bestCost float64
	ties := uint64(0)
	for _, h := range p.backends {
		s, ok := usable(h, skip)
		if !ok {
			continue
		}
		cost := float64(h.Inflight()+1) / s.EffectiveWeight()
		switch {
		case best == nil || cost < bestCost:
			best, bestCost, ties = h, cost, 1
		case cost == bestCost:
			ties++
			if p.rnd.Uint64()%ties == 0 {
				best = h
			}
		}
	}
	return best
}

// pickP2C draws two distinct usable backends at random and keeps the cheaper,
// cost = EWMA latency x (in-flight + 1) / effective weight. Two choices give
// exponentially better balance than one (Mitzenmacher) without the herd that
// always taking the global minimum causes when many pickers share stale data.
// A backend with no samples yet costs 1µs per request in flight, so it is
// tried at once and its EWMA learned.
//
// The latency is read as of now (Handle.Latency): an estimate that has gone
// without samples decays, so a backend that was avoided for being slow is
// tried again once its cost has fallen to the others' (after about
// tau x ln(its latency / theirs)), and regains its share if it recovered.
//
// The draw first samples from all backends and rejects unusable ones, which
// costs O(1) while most are usable; only when that fails does it list the
// usable ones and draw among them, so a mostly-down set is still sampled
// uniformly.
func (p *Picker) pickP2C(skip []*backendactor.Handle, ex *Explanation) *backendactor.Handle {
	now := &lazyNow{clock: p.now}
	n := uint64(len(p.backends))
	if n >= 4 {
		for range 4 {
			r := p.rnd.Uint64()
			i, j := r%n, (r>>32)%n
			if i == j {
				continue
			}
			a, b := p.backends[i], p.backends[j]
			if _, ok := usable(a, skip); !ok {
				continue
			}
			if _, ok := usable(b, skip); !ok {
				continue
			}
			ex.sample(a, b, now)
			return cheaper(a, b, now)
		}
	}
	var buf [64]int
	idx := buf[:0]
	for i, h := range p.backends {
		if _, ok := usable(h, skip); ok {
			idx = append(idx, i)
		}
	}
	switch len(idx) {
	case 0:
		return nil
	case 1:
		return p.backends[idx[0]]
	}
	m := uint64(len(idx))
	r := p.rnd.Uint64()
	i := r % m
	// The second choice is uniform over the other m-1 backends.
	j := (i + 1 + (r>>32)%(m-1)) % m
	ex.sample(p.backends[idx[i]], p.backends[idx[j]], now)
	return cheaper(p.backends[idx[i]], p.backends[idx[j]], now)
}

func cheaper(a, b *backendactor.Handle, now *lazyNow) *backendactor.Handle {
	sa, sb := a.Snapshot(), b.Snapshot()
	la, lb := sa.EWMA, sb.EWMA
	if sa.Aging || sb.Aging { // out of line: over fresh estimates this stays a few loads
		la, lb = agingLatency(a, sa, now), agingLatency(b, sb, now)
	}
	if p2cCost(lb, b, sb) < p2cCost(la, a, sa) {
		return b
	}
	return a
}

// p2cCost is the expected wait per unit of weight: a backend of weight 2
// is as cheap as one of weight 1 with half its latency or half its load, so
// over many picks shares follow weights when latencies are equal.
func p2cCost(lat time.Duration, h *backendactor.Handle, s *backendactor.Snapshot) float64 {
	return (float64(lat) + 1e3) * float64(h.Inflight()+1) / s.EffectiveWeight()
}

// agingLatency is a candidate's latency as of the pick, read with the
// picker's clock when the estimate ages.
func agingLatency(h *backendactor.Handle, s *backendactor.Snapshot, now *lazyNow) time.Duration {
	if !s.Aging {
		return s.EWMA
	}
	return h.Latency(now.get())
}

// lazyNow reads the picker's clock at most once per pick, and only when a
// candidate's estimate ages: most picks read no clock at all.
type lazyNow struct {
	clock func() time.Time
	at    time.Time
}

func (n *lazyNow) get() time.Time {
	if n.at.IsZero() {
		n.at = n.clock()
	}
	return n.at
}

func (p *Picker) firstUsable(skip []*backendactor.Handle) *backendactor.Handle {
	for _, h := range p.backends {
		if _, ok := usable(h, skip); ok {
			return h
		}
	}
	return nil
}

// smoothCycle returns one full cycle of nginx's smooth weighted round robin:
// each step every backend gains its weight, the richest is chosen and pays
// the total back. Heavy backends are spread through the cycle instead of
// served in a burst (5:1:1 gives a a b a c a a, not a a a a a b c).
func smoothCycle(weights []int) []uint16 {
	total := 0
	for _, w := range weights {
		total += w
	}
	cur := make([]int, len(weights))
	seq := make([]uint16, 0, total)
	for range total {
		best := 0
		for i, w := range weights {
			cur[i] += w
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		seq = append(seq, uint16(best))
	}
	return seq
}
