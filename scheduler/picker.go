package scheduler

import (
	"errors"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/lbd/lbd/backendactor"
)

// ErrNoBackend means no backend is eligible for the request: all are down,
// drained, ejected, open, capped or already tried.
var ErrNoBackend = errors.New("no eligible backend")

// Rand is the randomness a picker needs; tests pass a seeded source.
type Rand interface{ Uint64() uint64 }

type globalRand struct{}

// Uint64 uses the runtime's per-thread generator: safe and lock-free.
func (globalRand) Uint64() uint64 { return rand.Uint64() }

// Policy names, as in config and the admin API.
const (
	RR      = "rr"
	WRR     = "wrr"
	LC      = "lc"
	P2CEWMA = "p2c-ewma"
)

type policyKind uint8

const (
	kindRR policyKind = iota
	kindWRR
	kindLC
	kindP2C
)

// Picker is an immutable routing table the scheduler actor builds whenever the
// backend set, the policy, weights or eligibility change. Pick reads the
// backends' published snapshots and in-flight counters live, so between
// rebuilds it still sees EWMA and load move.
type Picker struct {
	policy    policyKind
	name      string
	backends  []*backendactor.Handle // the policy's candidates (the canary backend is not among them)
	all       []*backendactor.Handle // every backend, in configuration order
	seq       []uint16               // wrr: one smooth cycle of indices into backends
	cursor    *atomic.Uint64         // rr and wrr position; outlives pickers so a rebuild does not reset it
	sticky    stickyKey
	hashes    []uint64 // per backend, for rendezvous hashing
	canary    *backendactor.Handle
	canaryPct float64 // 0..100
	rnd       Rand
	now       func() time.Time // p2c-ewma reads latency estimates as of now
}

// Policy returns the policy's name.
func (p *Picker) Policy() string { return p.name }

// Backends returns every backend in configuration order. Do not modify.
func (p *Picker) Backends() []*backendactor.Handle { return p.all }

// Pick chooses a backend for r and acquires a slot on it; the caller must
// Release it. client is the client's address (the sticky "ip" key); tried
// lists backends this request already failed on, which are skipped. A
// backend whose handle refuses the slot (cap reached, probe quota used) is
// skipped too and the choice made again.
func (p *Picker) Pick(r *http.Request, client string, tried []*backendactor.Handle) (*backendactor.Handle, error) {
	return p.pick(r, client, tried, nil)
}

// pick is Pick, telling ex (when not nil: PickExplain) how it went.
func (p *Picker) pick(r *http.Request, client string, tried []*backendactor.Handle, ex *Explanation) (*backendactor.Handle, error) {
	if p.canary != nil && p.canaryPct > 0 && !contains(tried, p.canary) &&
		float64(p.rnd.Uint64()>>11)/(1<<53)*100 < p.canaryPct && p.canary.Acquire() {
		ex.by(ByCanary)
		return p.canary, nil
	}
	var buf [8]*backendactor.Handle
	skip := append(buf[:0], tried...)
	if p.sticky.kind != stickyOff {
		if key, ok := p.sticky.key(r, client); ok {
			if h := p.rendezvous(key, skip); h != nil {
				if h.Acquire() {
					ex.by(BySticky)
					return h, nil
				}
				ex.refuse(h)
				skip = append(skip, h)
			}
		}
	}
	for range len(p.backends) {
		var h *backendactor.Handle
		switch p.policy {
		case kindRR:
			h = p.pickRR(skip)
		case kindWRR:
			h = p.pickWRR(skip)
		case kindLC:
			h = p.pickLC(skip)
		default:
			h = p.pickP2C(skip, ex)
		}
		if h == nil {
			break
		}
		if h.Acquire() {
			ex.by(ByPolicy)
			return h, nil
		}
		ex.refuse(h)
		skip = append(skip, h)
	}
	return nil, ErrNoBackend
}

// usable reports whether h may be offered: eligible now and not skipped.
func usable(h *backendactor.Handle, skip []*backendactor.Handle) (*backendactor.Snapshot, bool) {
	s := h.Snapshot()
	return s, s.Eligible && !contains(skip, h)
}

func contains(hs []*backendactor.Handle, h *backendactor.Handle) bool {
	for _, x := range hs {
		if x == h {
			return true
		}
	}
	return false
}

// chance returns true with probability f (in [0,1]).
func (p *Picker) chance(f float64) bool {
	return f >= 1 || float64(p.rnd.Uint64()>>11)/(1<<53) < f
}
