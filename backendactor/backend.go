// Package backendactor runs one actor per backend. The actor is the only
// owner of the backend's peak-EWMA latency, circuit breaker, warm-up ramp,
// health, ejection, drain flag, weight and concurrency cap; it publishes an
// immutable Snapshot that the request path reads through the backend's
// Handle, whose atomics count in-flight requests and collect latency samples
// for the actor to fold on its tick.
//
// Who talks to it: the scheduler (create, retire, change notifications), the
// proxy (Acquire/Release through the Handle, no messages), the health checker
// (HealthResult), the outlier detector (Stats, Eject), admin (commands,
// Stats) and, on reload, the scheduler again (SetRules).
package backendactor

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	"github.com/lbd/lbd/actor"
)

// Config describes one backend and the rules its actor applies. The rule
// fields (Breaker to WarmupMinPercent, and StartUnhealthy in a template)
// are Rules; Config.Rules and Config.WithRules convert, and SetRules
// changes them while the actor runs.
type Config struct {
	URL string
	// Name is the actor's name in the registry (default URL); a pool other
	// than the default names its backends "POOL:URL", so two pools may hold
	// the same URL.
	Name string
	// Label is the backend's optional name from the config or the admin
	// call (config.Backend.Name), shown next to its URL; SetName changes it.
	Label       string
	Weight      int
	MaxInflight int
	// Protocol is how the proxy speaks to the backend: http1, h2c or h2.
	Protocol string
	// TLS is the client TLS configuration of an https backend with trust
	// settings of its own (ca_file, server_name); nil uses the system roots
	// and the URL's host. The proxy and the health prober read it from the
	// handle; it is part of the backend's identity, never changed.
	TLS *tls.Config

	Breaker          BreakerConfig
	Rise, Fall       int
	Warmup           time.Duration
	WarmupMinPercent int
	// SkipWarmup starts the backend at full weight (backends of the initial
	// config, which all start together, have no one to ramp up against).
	SkipWarmup bool
	// StartUnhealthy makes the backend wait for its first good probe before
	// it takes traffic (see Health); by default a new backend is presumed
	// healthy. Set it only when an active health checker runs.
	StartUnhealthy bool

	EWMADecay time.Duration // tau of the latency EWMA, default 1s
	// EWMAGrace is how long the latency estimate holds still after its last
	// sample before it decays towards zero (see EWMA); default two ticks, so
	// a backend that gets samples every tick never decays between folds.
	EWMAGrace time.Duration
	Tick      time.Duration // default 100ms
	Mailbox   int           // default 64

	// OnChange is called on the actor's goroutine after a change that alters
	// picking (eligibility, weight, warm-up step, cap). It must not block.
	OnChange func(*Handle)
	// OnTransition is told every change of the backend's state or breaker
	// with its cause (see Transition), on the actor's goroutine, starting
	// with the backend's arrival (From StateAdded, Cause JoinCause). It
	// must not block: the events actor's Record is one.
	OnTransition func(Transition)
	// JoinCause says why the backend joined its pool ("in the config
	// file", "admin add", "dns: joined the SRV set").
	JoinCause string
	Logger    *slog.Logger
}

// New starts a backend actor and returns its handle.
func New(reg *actor.Registry, c Config) *Handle {
	s := newState(c)
	name := c.Name
	if name == "" {
		name = c.URL
	}
	s.h.ref = actor.Spawn(reg, s, actor.Options{
		Name: name, Kind: "backend", Mailbox: s.cfg.Mailbox, TickEvery: s.cfg.Tick, Logger: s.cfg.Logger,
	})
	return s.h
}

// newState builds a backend's handle and actor state, with the first
// snapshot published.
func newState(c Config) *state {
	if c.Weight < 1 {
		c.Weight = 1
	}
	if c.EWMADecay <= 0 {
		c.EWMADecay = time.Second
	}
	if c.Tick <= 0 {
		c.Tick = 100 * time.Millisecond
	}
	if c.EWMAGrace <= 0 {
		c.EWMAGrace = 2 * c.Tick
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	h := &Handle{url: c.URL, protocol: c.Protocol, tls: c.TLS}
	h.bucket.Store(new(bucket))
	h.threshold.Store(int64(c.Breaker.FailureThreshold))
	s := &state{h: h, cfg: c, label: c.Label, weight: c.Weight, maxInflight: int64(max(c.MaxInflight, 0))}
	s.health.Up, s.health.Pending = !c.StartUnhealthy, c.StartUnhealthy
	if !c.SkipWarmup && c.Warmup > 0 {
		s.warmStart = s.now()
	}
	s.publish(s.now())
	return s
}

// Bind receives the actor's address before its goroutine starts.
func (s *state) Bind(r *actor.Ref) {
	s.ref = r
	r.SetState(s.h.snap.Load().State)
}

// state is the actor's private state; only its goroutine touches it.
type state struct {
	h   *Handle
	ref *actor.Ref
	cfg Config

	label        string
	weight       int
	maxInflight  int64
	ewma         EWMA
	breaker      Breaker
	health       Health
	draining     bool
	warmStart    time.Time
	ejectedUntil time.Time
	ejectedAt    time.Time
	ejectReason  string
	ejections    int
	trips        int // breaker openings, ever
	retireBy     time.Time
	unprobed     bool // active checks were turned off: probe results are ignored
	version      uint64

	// Why the state and the breaker change in the step being taken (a
	// message or a tick), for the transitions publish reports.
	cause, breakerCause string
	last                lastCauses
}

func (s *state) now() time.Time { return time.Now() }

// Receive is the table of contents of what a backend actor does. Commands
// are acknowledged after the new snapshot is published, so a caller whose
// command returned sees its effect on the very next pick.
func (s *state) Receive(msg any) {
	now := s.now()
	var ack chan<- error
	var err error
	switch m := msg.(type) {
	case wake:
		s.fold(now)
	case statsReq:
		m.reply <- s.stats(now)
		return
	case healthResult:
		if s.unprobed {
			return // active checks are off: a stopping checker's last word (see SetRules)
		}
		before := s.health
		s.health = s.health.Next(m.ok, s.cfg.Rise, s.cfg.Fall, m.at, m.detail)
		if before.Up != s.health.Up {
			s.because(probeCause(before, s.health, s.cfg.Rise, s.cfg.Fall))
		}
		if !before.Up && s.health.Up {
			s.startWarmup(now)
		}
	case drain:
		ack, s.draining = m.ack, true
		s.because(m.cause)
	case undrain:
		ack, err = m.ack, s.retiringErr()
		if s.draining && err == nil {
			s.draining = false
			s.because(m.cause)
			s.startWarmup(now)
		}
	case setCap:
		ack, s.maxInflight = m.ack, int64(max(m.n, 0))
	case setWeight:
		ack, s.weight = m.ack, max(m.w, 1)
	case setName:
		ack, s.label = m.ack, m.name
	case warmReset:
		ack, s.warmStart = m.ack, time.Time{}
		s.because(causeWarmReset)
		s.startWarmup(now)
	case eject:
		ack = m.ack
		s.ejectedUntil, s.ejectReason, s.ejectedAt = m.until, m.reason, now
		s.ejections++
		s.because(ejectCause(m.reason, m.detail, m.until.Sub(now), s.ejections))
		s.h.resetOutlierRuns()
	case retire:
		ack = m.ack
		if s.retireBy.IsZero() {
			s.emit(now, KindState, s.h.snap.Load().State, StateRemoved, m.cause)
		}
		s.draining, s.retireBy = true, m.deadline
	case setRules:
		ack = m.ack
		s.setRules(m.rules, now)
	default:
		s.cfg.Logger.Warn("backend actor: unknown message", "backend", s.h.url, "type", fmt.Sprintf("%T", msg))
		return
	}
	s.publish(now)
	if ack != nil {
		ack <- err
	}
	s.maybeRetire(now)
}

func (s *state) retiringErr() error {
	if !s.retireBy.IsZero() {
		return fmt.Errorf("backend %s is being removed", s.h.url)
	}
	return nil
}

// Tick folds the samples, lets timers expire and republishes.
func (s *state) Tick(now time.Time) {
	s.fold(now)
	if !s.ejectedUntil.IsZero() && !now.Before(s.ejectedUntil) {
		// Back from an ejection: the runs start over (requests that were in
		// flight when it was ejected may have added to them), and the
		// backend ramps up as after any recovery.
		s.ejectedUntil, s.ejectReason = time.Time{}, ""
		s.h.resetOutlierRuns()
		s.startWarmup(now)
	}
	if !s.warmStart.IsZero() && now.Sub(s.warmStart) >= s.cfg.Warmup {
		s.warmStart = time.Time{}
	}
	s.publish(now)
	s.maybeRetire(now)
}

// fold swaps the sample bucket and runs the samples through the EWMA and the breaker.
func (s *state) fold(now time.Time) {
	b := s.h.bucket.Swap(new(bucket))
	n, fail := b.n.Load(), b.fail.Load()
	if n > 0 {
		s.ewma = s.ewma.Observe(time.Duration(b.sumNs.Load()/n), now, s.decay())
	}
	before := s.breaker
	prev := before.State
	// The longest run since the last fold, not the run now: a success right
	// after the threshold was crossed must not hide the crossing.
	run := max(s.h.peakFail.Swap(0), s.h.consecFail.Load())
	s.breaker = s.breaker.Next(BreakerInput{
		ConsecutiveFailures: run, Successes: n - fail, Failures: fail,
	}, now, s.cfg.Breaker)
	if prev != s.breaker.State && s.breakerCause == "" {
		s.breakerCause = breakerCause(before, s.breaker, run, s.cfg.Breaker)
	}
	quota := int64(max(s.cfg.Breaker.HalfOpenProbes, 1))
	switch {
	case prev != HalfOpen && s.breaker.State == HalfOpen:
		s.h.probes.Store(quota)
	case prev == HalfOpen && s.breaker.State == HalfOpen && n == 0 && s.h.probes.Load() <= 0 && s.h.inflight.Load() == 0:
		// Every probe was used and none reported: their clients went away
		// (Release with Canceled says nothing about the backend). Without a
		// new quota the breaker would stay half-open and refuse every request
		// for ever.
		s.h.probes.Store(quota)
	case prev != Closed && s.breaker.State == Closed:
		s.because("breaker closed after a probe request succeeded")
		s.startWarmup(now)
	}
	if prev != Open && s.breaker.State == Open {
		s.trips++
	}
	if prev != s.breaker.State {
		s.cfg.Logger.Info("breaker", "backend", s.h.url, "from", prev.String(), "to", s.breaker.State.String())
	}
}

func (s *state) decay() Decay { return Decay{Tau: s.cfg.EWMADecay, Grace: s.cfg.EWMAGrace} }

func (s *state) startWarmup(now time.Time) {
	if s.cfg.Warmup > 0 {
		s.warmStart = now
	}
}

func (s *state) maybeRetire(now time.Time) {
	if s.retireBy.IsZero() {
		return
	}
	if s.h.inflight.Load() == 0 || !now.Before(s.retireBy) {
		s.ref.Stop()
	}
}

func (s *state) currentState(now time.Time) string {
	switch {
	case s.draining:
		return StateDraining
	case !s.ejectedUntil.IsZero() && now.Before(s.ejectedUntil):
		return StateEjected
	case !s.health.Up:
		return StateUnhealthy
	case !s.warmStart.IsZero():
		return StateWarming
	}
	return StateHealthy
}

// publish stores a new Snapshot and tells OnChange when picking is affected.
func (s *state) publish(now time.Time) {
	st := s.currentState(now)
	warm := WarmupFactor(s.warmStart, now, s.cfg.Warmup, s.cfg.WarmupMinPercent)
	next := &Snapshot{
		URL: s.h.url, Weight: s.weight, WarmFactor: warm, EWMA: s.ewma.Value, Sampled: s.ewma.At, Decay: s.decay(),
		Aging:    s.ewma.At.IsZero() || now.Sub(s.ewma.At) > s.cfg.EWMAGrace,
		Eligible: (st == StateHealthy || st == StateWarming) && s.breaker.State != Open,
		Breaker:  s.breaker.State, State: st, MaxInflight: s.maxInflight,
	}
	next.Name = s.label
	prev := s.h.snap.Load()
	material := prev == nil || prev.Name != next.Name || prev.Eligible != next.Eligible || prev.Weight != next.Weight ||
		prev.Breaker != next.Breaker || prev.State != next.State || prev.MaxInflight != next.MaxInflight ||
		next.WarmFactor-prev.WarmFactor > 0.02 || next.WarmFactor < prev.WarmFactor || (next.WarmFactor == 1) != (prev.WarmFactor == 1)
	if prev != nil && !material && prev.EWMA == next.EWMA && prev.Sampled.Equal(next.Sampled) && prev.Aging == next.Aging {
		s.cause, s.breakerCause = "", ""
		return
	}
	s.version++
	next.Version = s.version
	s.h.snap.Store(next)
	s.transitions(now, prev, next)
	if s.ref != nil {
		s.ref.SetState(fmt.Sprintf("%s breaker=%s ewma=%s inflight=%d", st, s.breaker.State, s.ewma.Value.Round(time.Microsecond), s.h.inflight.Load()))
	}
	if material && prev != nil && s.cfg.OnChange != nil {
		s.cfg.OnChange(s.h)
	}
}

// Restart rebuilds consistent state from the last published snapshot after a panic.
func (s *state) Restart() {
	p := s.h.snap.Load()
	now := s.now()
	*s = state{h: s.h, ref: s.ref, cfg: s.cfg, label: p.Name, last: s.last, weight: p.Weight, maxInflight: p.MaxInflight,
		ewma: EWMA{Value: p.EWMA, At: p.Sampled}, version: p.Version, unprobed: s.unprobed}
	s.health.Up = p.State != StateUnhealthy
	s.draining = p.State == StateDraining
	if p.Breaker != Closed {
		s.breaker = Breaker{State: Open, Until: now.Add(s.cfg.Breaker.OpenFor), Trips: 1, OpenedFor: s.cfg.Breaker.OpenFor}
		s.breakerCause = causeRestart
	}
	s.because(causeRestart)
	if p.WarmFactor < 1 {
		s.startWarmup(now)
	}
	s.publish(now)
}

func (s *state) stats(now time.Time) Stats {
	st := Stats{
		// The state the request path sees: the published one. Timed changes
		// (an ejection's end) take effect at the actor's next tick, and
		// /admin/backends must not call a backend healthy before picks can
		// reach it.
		URL: s.h.url, Weight: s.weight, State: s.h.snap.Load().State, Breaker: s.breaker.State,
		Inflight: s.h.inflight.Load(), MaxInflight: s.maxInflight,
		EWMAMillis: float64(s.ewma.Value) / 1e6,
		Requests:   s.h.requests.Load(), Failures: s.h.failures.Load(),
		WarmFactor: WarmupFactor(s.warmStart, now, s.cfg.Warmup, s.cfg.WarmupMinPercent),
		Healthy:    s.health.Up, Draining: s.draining, EjectReason: s.ejectReason, Ejections: s.ejections,
		BreakerTrips: s.trips, Consecutive5xx: s.h.consec5xx.Load(), ConsecutiveGateway: s.h.consecGateway.Load(),
		LastProbeDetail: s.health.LastDetail,
		StateCause:      s.last.state, BreakerCause: s.last.breaker,
	}
	if !s.last.since.IsZero() {
		st.StateSince = ptr(s.last.since)
	}
	if !s.warmStart.IsZero() {
		st.WarmupRemainingMs = max(0, (s.cfg.Warmup - now.Sub(s.warmStart)).Milliseconds())
	}
	if st.State == StateEjected {
		st.EjectedUntil, st.EjectedAt = ptr(s.ejectedUntil), ptr(s.ejectedAt)
	}
	if s.breaker.State == Open {
		st.BreakerOpenUntil = ptr(s.breaker.Until)
	}
	if !s.health.LastProbe.IsZero() {
		st.LastProbe = ptr(s.health.LastProbe)
	}
	return st
}

func ptr[T any](v T) *T { return &v }
