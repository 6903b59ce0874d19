package backendactor

import (
	"context"
	"crypto/tls"
	"sync/atomic"
	"time"

	"github.com/lbd/lbd/actor"
)

// Outcome classifies a finished request for the breaker and outlier counters.
type Outcome uint8

// Outcomes, from the backend's point of view.
const (
	Success      Outcome = iota // any response below 500
	ServerError                 // a 5xx response from the backend (or a gRPC status that signals server trouble)
	GatewayError                // connect error, reset or timeout: the backend did not answer
	Canceled                    // the client went away; says nothing about the backend
)

// Failed reports whether the outcome counts against the backend.
func (o Outcome) Failed() bool { return o == ServerError || o == GatewayError }

// Handle is the long-lived, concurrency-safe face of one backend actor. The
// request path uses only its atomics: Snapshot, Acquire and Release send no
// message. Control methods send messages to the actor, which is the only
// writer of everything the handle publishes.
type Handle struct {
	url      string
	protocol string
	tls      *tls.Config
	ref      *actor.Ref
	snap     atomic.Pointer[Snapshot]

	inflight atomic.Int64
	probes   atomic.Int64 // half-open admissions left; set by the actor
	bucket   atomic.Pointer[bucket]

	// Counters the request path updates; the actor and the outlier detector read them.
	consecFail    atomic.Int64
	consec5xx     atomic.Int64
	consecGateway atomic.Int64
	requests      atomic.Uint64
	failures      atomic.Uint64
	threshold     atomic.Int64 // breaker failure threshold, for the wake-up below

	// The longest runs since their reader last took them: the actor takes
	// peakFail on each fold, the outlier detector the other two (TakeRuns).
	// A run is over at the next success, often well before anyone looks;
	// the peaks keep a crossing of a threshold from going unseen.
	peakFail, peak5xx, peakGateway atomic.Int64
}

// bucket collects the samples of one tick; the actor swaps it out and folds it.
type bucket struct {
	n, fail, sumNs atomic.Int64
}

// URL returns the backend's normalised URL, its identity.
func (h *Handle) URL() string { return h.url }

// Protocol returns the upstream protocol from the backend's spec.
func (h *Handle) Protocol() string { return h.protocol }

// TLS returns the backend's own client TLS configuration, or nil for the
// defaults (see Config.TLS). Callers must not modify it.
func (h *Handle) TLS() *tls.Config { return h.tls }

// Ref returns the backend's actor address.
func (h *Handle) Ref() *actor.Ref { return h.ref }

// Snapshot returns the state the actor last published. Never nil.
func (h *Handle) Snapshot() *Snapshot { return h.snap.Load() }

// Latency is the backend's latency estimate for a pick made at now: the
// published EWMA, decayed once the actor has flagged it as aging
// (Snapshot.Aging, Snapshot.Latency). While it ages, the requests that
// finished since the last fold count too: a backend whose decayed estimate
// let it be picked again gets only the few requests it takes for one of
// them to answer, and if that answer is slow the next picks see it at once
// rather than at the next fold. That bounds the exploration of a backend
// that stays slow to about one round trip's worth of picks per decay,
// instead of a whole tick's.
//
// A caller that wants to read no clock in the common case checks
// Snapshot().Aging first: when it is false, Latency is Snapshot().EWMA.
func (h *Handle) Latency(now time.Time) time.Duration {
	s := h.snap.Load()
	if !s.Aging {
		return s.EWMA
	}
	lat := s.Latency(now)
	if b := h.bucket.Load(); b.n.Load() > 0 {
		lat = max(lat, time.Duration(b.sumNs.Load()/max(b.n.Load(), 1)))
	}
	return lat
}

// Inflight returns the number of requests holding a slot.
func (h *Handle) Inflight() int64 { return h.inflight.Load() }

// Acquire takes a request slot if the backend is eligible, under its cap and,
// when half-open, has a probe left. A true result must be paired with Release.
func (h *Handle) Acquire() bool {
	s := h.snap.Load()
	if !s.Eligible {
		return false
	}
	probe := s.Breaker == HalfOpen
	if probe && !takeOne(&h.probes) {
		return false
	}
	if n := h.inflight.Add(1); s.MaxInflight > 0 && n > s.MaxInflight {
		h.inflight.Add(-1)
		if probe {
			h.probes.Add(1)
		}
		return false
	}
	return true
}

func takeOne(n *atomic.Int64) bool {
	for {
		v := n.Load()
		if v <= 0 {
			return false
		}
		if n.CompareAndSwap(v, v-1) {
			return true
		}
	}
}

// Release returns the slot taken by Acquire and records the request's latency
// (to response headers) and outcome in the current sample bucket.
func (h *Handle) Release(latency time.Duration, o Outcome) {
	h.inflight.Add(-1)
	if o == Canceled {
		return
	}
	b := h.bucket.Load()
	b.n.Add(1)
	b.sumNs.Add(int64(latency))
	h.requests.Add(1)
	if !o.Failed() {
		h.consecFail.Store(0)
		h.consec5xx.Store(0)
		h.consecGateway.Store(0)
		if h.snap.Load().Breaker == HalfOpen {
			h.wake()
		}
		return
	}
	b.fail.Add(1)
	h.failures.Add(1)
	// Both counters follow Envoy's outlier detection: a 5xx run includes the
	// failures that would have made lbd answer 5xx itself (connect errors,
	// resets, timeouts), while a gateway run counts only those, and a 5xx
	// that the backend did send proves it reachable and breaks the run.
	raise(&h.peak5xx, h.consec5xx.Add(1))
	if o == GatewayError {
		raise(&h.peakGateway, h.consecGateway.Add(1))
	} else {
		h.consecGateway.Store(0)
	}
	// Wake the actor the moment the breaker has something to decide, rather
	// than at its next tick; this is the only message the request path sends,
	// and only on a failure that crosses the threshold or ends a probe.
	n := h.consecFail.Add(1)
	raise(&h.peakFail, n)
	if n == h.threshold.Load() || h.snap.Load().Breaker == HalfOpen {
		h.wake()
	}
}

// raise sets peak to n if n is higher.
func raise(peak *atomic.Int64, n int64) {
	for {
		p := peak.Load()
		if n <= p || peak.CompareAndSwap(p, n) {
			return
		}
	}
}

func (h *Handle) wake() { _ = h.ref.Tell(wake{}) }

// resetOutlierRuns ends the runs the outlier detector reads; the breaker's
// own run (consecFail) is left to the breaker.
func (h *Handle) resetOutlierRuns() {
	h.consec5xx.Store(0)
	h.consecGateway.Store(0)
	h.peak5xx.Store(0)
	h.peakGateway.Store(0)
}

// TakeRuns returns the longest runs of failures (Counters.Consecutive5xx)
// and of gateway failures (Counters.ConsecutiveGateway) since its last call,
// or the current runs if longer. A run that reaches a threshold is usually
// ended by a success within milliseconds under load; reading only the
// current run at a poll would miss almost every one. It is meant for one
// reader, the outlier detector: each call takes what the previous left.
func (h *Handle) TakeRuns() (fiveXX, gateway int64) {
	return max(h.peak5xx.Swap(0), h.consec5xx.Load()), max(h.peakGateway.Swap(0), h.consecGateway.Load())
}

// Counters are the request path's running figures for one backend. They are
// read from atomics, without a message: the outlier detector polls them.
type Counters struct {
	// Requests and Failures count finished requests since the backend was
	// added (a request whose client went away is not counted).
	Requests, Failures uint64
	// Consecutive5xx is the current run of failed requests (5xx responses
	// and gateway failures); ConsecutiveGateway the current run of gateway
	// failures (connect errors, resets, timeouts). A success ends both, and
	// so does an ejection, so that a backend returning from one starts over.
	Consecutive5xx, ConsecutiveGateway int64
}

// Counters returns the backend's running figures.
func (h *Handle) Counters() Counters {
	return Counters{
		Requests: h.requests.Load(), Failures: h.failures.Load(),
		Consecutive5xx: h.consec5xx.Load(), ConsecutiveGateway: h.consecGateway.Load(),
	}
}

// Stats asks the actor for its full figures.
func (h *Handle) Stats(ctx context.Context) (Stats, error) {
	return actor.Ask(ctx, h.ref, func(r chan<- Stats) any { return statsReq{r} })
}

// tell sends a command and waits until the actor has applied it, so an admin
// call that returns has taken effect.
func tell[M any](ctx context.Context, h *Handle, mk func(ack chan<- error) M) error {
	err, askErr := actor.Ask(ctx, h.ref, func(r chan<- error) any { return mk(r) })
	if askErr != nil {
		return askErr
	}
	return err
}

// Drain stops new requests to the backend; in-flight ones complete.
// cause says who asked and why ("admin drain"), for the transition.
func (h *Handle) Drain(ctx context.Context, cause string) error {
	return tell(ctx, h, func(a chan<- error) drain { return drain{cause, a} })
}

// Undrain returns a drained backend to service, with a fresh warm-up.
func (h *Handle) Undrain(ctx context.Context, cause string) error {
	return tell(ctx, h, func(a chan<- error) undrain { return undrain{cause, a} })
}

// SetName changes the backend's optional name (Config.Label).
func (h *Handle) SetName(ctx context.Context, name string) error {
	return tell(ctx, h, func(a chan<- error) setName { return setName{name, a} })
}

// SetCap sets the per-backend concurrency cap; 0 removes it.
func (h *Handle) SetCap(ctx context.Context, n int) error {
	return tell(ctx, h, func(a chan<- error) setCap { return setCap{n, a} })
}

// SetWeight sets the configured weight.
func (h *Handle) SetWeight(ctx context.Context, w int) error {
	return tell(ctx, h, func(a chan<- error) setWeight { return setWeight{w, a} })
}

// WarmReset restarts the warm-up ramp.
func (h *Handle) WarmReset(ctx context.Context) error {
	return tell(ctx, h, func(a chan<- error) warmReset { return warmReset{a} })
}

// HealthResult reports one active probe. It waits for room in the mailbox
// up to ctx but not for the actor to process it.
func (h *Handle) HealthResult(ctx context.Context, ok bool, at time.Time, detail string) error {
	return h.ref.Send(ctx, healthResult{ok: ok, at: at, detail: detail})
}

// Eject takes the backend out of rotation until the given time. reason
// is the rule (consecutive_5xx, ...), detail its figures in words.
func (h *Handle) Eject(ctx context.Context, until time.Time, reason, detail string) error {
	return tell(ctx, h, func(a chan<- error) eject { return eject{until, reason, detail, a} })
}

// Retire drains the backend and stops its actor once nothing is in flight or
// the deadline passes. Done is closed when it has stopped. cause says why
// it leaves ("admin remove", "dns: left the SRV set").
func (h *Handle) Retire(ctx context.Context, deadline time.Time, cause string) error {
	return tell(ctx, h, func(a chan<- error) retire { return retire{deadline, cause, a} })
}

// Name returns the backend's optional name as its actor last published it.
func (h *Handle) Name() string { return h.snap.Load().Name }

// Done is closed when the backend's actor has stopped.
func (h *Handle) Done() <-chan struct{} { return h.ref.Done() }

// Stop stops the actor at once.
func (h *Handle) Stop() { h.ref.Stop() }
