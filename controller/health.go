package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbd/lbd/actor"
	"github.com/lbd/lbd/backendactor"
)

// HealthConfig configures the active health checker (config section "health").
// Interval, Timeout and Jitter change live with Reconfigure.
type HealthConfig struct {
	Interval time.Duration // mean time between two probes of one backend
	Timeout  time.Duration // a probe that has not answered by then failed
	// Jitter spreads the probes: each wait is Interval x (1 ± Jitter),
	// uniformly, so probes of many backends (and of many lbd replicas) do
	// not fall into step.
	Jitter float64
	// Backends returns the set to probe; it is read on every tick, so
	// backends added or removed at runtime are picked up (the scheduler's
	// picker: sched.Picker().Backends()).
	Backends func() []*backendactor.Handle
	// Prober runs one probe (an *HTTPProber in lbd; tests script one).
	Prober Prober
	// Rand draws the jitter; nil seeds one from the runtime.
	Rand *rand.Rand
	// Name is the actor's name (default "health-checker"); Pool the pool
	// whose backends it probes, the "pool" label of its metrics (default
	// "default"). One checker runs per pool with active checks.
	Name, Pool string
	Registry   *actor.Registry
	// Registerer receives lbd_health_checks_total (nil: no metrics). The
	// checkers of several pools share one family in it, each its own
	// "pool" series; a checker that stops deletes its pool's series, so the
	// checker that replaces a pool's must start after the old one stopped.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Validate reports the first setting the checker cannot run with.
func (c HealthConfig) Validate() error {
	if err := (HealthSettings{Interval: c.Interval, Timeout: c.Timeout, Jitter: c.Jitter}).Validate(); err != nil {
		return err
	}
	if c.Backends == nil || c.Prober == nil {
		return errors.New("health checker needs a backend source and a prober")
	}
	return nil
}

// Prober runs one active probe of a backend. The checker calls it on a
// goroutine of its own, with a context that ends at the probe timeout or when
// the checker stops; Probe must return by then.
type Prober interface {
	Probe(ctx context.Context, h *backendactor.Handle) ProbeResult
}

// Probe results, the "result" label of lbd_health_checks_total.
const (
	ProbeSuccess   = "success"
	ProbeBadStatus = "bad_status" // answered, but not with the expected status
	ProbeError     = "error"      // connection refused, reset, TLS failure...
	ProbeTimeout   = "timeout"
	// ProbeLocalError is a probe lbd could not make: it ran out of file
	// descriptors (EMFILE, ENFILE). It says nothing about the backend and
	// is not handed to it: lbd's own exhaustion must not mark healthy
	// backends down, which would turn an overload into an outage.
	ProbeLocalError = "local_error"
)

var probeResults = []string{ProbeSuccess, ProbeBadStatus, ProbeError, ProbeTimeout, ProbeLocalError}

// ProbeResult is one probe's verdict.
type ProbeResult struct {
	Result string // one of the Probe* constants
	Detail string // for /admin/backends' last_probe_detail and the backend's events: "GET /healthz answered 503", the error
}

// OK reports whether the probe passed.
func (r ProbeResult) OK() bool { return r.Result == ProbeSuccess }

// HealthStatus is what the checker last published (for /admin/selftest and tests).
type HealthStatus struct {
	Pool      string    `json:"pool"`
	Backends  int       `json:"backends"`
	Probing   int       `json:"probing"` // probes in flight
	Probes    uint64    `json:"probes"`  // probes completed since start
	LastTick  time.Time `json:"last_tick"`
	Interval  string    `json:"interval"`
	StartedAt time.Time `json:"started_at"`
}

// HealthChecker is the active health checker actor. On each tick it looks at
// the backend set, starts the probes that are due on goroutines it owns (so
// a slow backend never holds up its mailbox), and when a probe's result comes
// back as a message it counts it and sends it to the backend's actor, which
// alone decides, by its rise and fall thresholds, whether the backend is up.
//
// Schedule: a backend of the initial set is first probed at a random moment
// within one interval (so the first round is spread too); a backend that
// appears later is probed at once, since it waits for that probe to take
// traffic (backendactor.Health). After that each backend is probed every
// Interval x (1 ± Jitter), measured from when its last probe was due, and
// never twice at once.
//
// The first round is the first probe of every backend of the initial set,
// its result handed to the backend's actor (whatever it was), or the
// backend's removal; FirstRound is closed when it is over, so a daemon can
// say it is ready once its backends' health reflects a probe (sd_notify).
type HealthChecker struct {
	ref        *actor.Ref
	status     atomic.Pointer[HealthStatus]
	firstRound chan struct{}
}

// NewHealthChecker starts the checker actor.
func NewHealthChecker(c HealthConfig) (*HealthChecker, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Rand == nil {
		c.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	if c.Name == "" {
		c.Name = "health-checker"
	}
	if c.Pool == "" {
		c.Pool = defaultPool
	}
	hc := &HealthChecker{firstRound: make(chan struct{})}
	s := &healthState{cfg: c, hc: hc, targets: map[*backendactor.Handle]*probeTarget{},
		firstPending: map[*backendactor.Handle]bool{}}
	if c.Registerer != nil {
		checks, err := sharedCounterVec(c.Registerer, prometheus.CounterOpts{
			Name: "lbd_health_checks_total",
			Help: "Active health probes by pool, backend and result (success, bad_status, error, timeout, local_error: lbd could not make it).",
		}, "pool", "backend", "result")
		if err != nil {
			return nil, fmt.Errorf("health checker metrics: %w", err)
		}
		s.checks = checks
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	now := time.Now()
	s.started = now
	s.sync(now, true)
	s.firstRoundProgress()
	s.publish(now)
	hc.ref = actor.Spawn(c.Registry, s, actor.Options{
		Name: c.Name, Kind: "health", Mailbox: 256, TickEvery: healthTick(c.Interval), Logger: c.Logger,
	})
	return hc, nil
}

// healthTick is how often the checker looks for due probes: a tenth of the
// interval, between 10ms and 100ms, so a probe starts at most that late.
func healthTick(interval time.Duration) time.Duration {
	return max(min(interval/10, 100*time.Millisecond), 10*time.Millisecond)
}

// FirstRound is closed once every backend of the initial set has been
// probed once and its actor told the result, pass or fail (a backend
// removed before its probe counts as done), or when the checker stops.
func (hc *HealthChecker) FirstRound() <-chan struct{} { return hc.firstRound }

// Status returns what the checker last published. Never nil.
func (hc *HealthChecker) Status() *HealthStatus { return hc.status.Load() }

// Stop stops the checker, cancels the probes in flight and waits for their
// goroutines.
func (hc *HealthChecker) Stop(ctx context.Context) error { return hc.ref.StopWait(ctx) }

// probeDone is a probe's result, sent by its goroutine.
type probeDone struct {
	h   *backendactor.Handle
	res ProbeResult
	at  time.Time
}

// probeTarget is one backend's schedule.
type probeTarget struct {
	next    time.Time
	probing bool
	lastOK  *bool // the previous result, to log changes only
}

// healthState is the actor's state; only its goroutine touches it (the
// probe goroutines get their handle and context and send a probeDone back).
type healthState struct {
	cfg     HealthConfig
	hc      *HealthChecker
	ref     *actor.Ref
	targets map[*backendactor.Handle]*probeTarget
	checks  *prometheus.CounterVec
	probes  uint64
	started time.Time
	// firstPending holds the initial backends whose first result has not
	// reached their actor yet; nil once the first round is over.
	firstPending map[*backendactor.Handle]bool

	ctx    context.Context // ends when the actor stops: cancels probes in flight
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (s *healthState) Bind(r *actor.Ref) { s.ref = r }

// Receive is the table of contents: the checker gets its probes' results
// and new settings.
func (s *healthState) Receive(msg any) {
	switch m := msg.(type) {
	case probeDone:
		s.done(m)
	case reconfigureHealth:
		m.reply <- s.reconfigure(m.set, time.Now())
	default:
		s.cfg.Logger.Warn("health checker: unknown message", "type", fmt.Sprintf("%T", msg))
	}
}

// Tick follows the backend set and starts the probes that are due.
func (s *healthState) Tick(now time.Time) {
	s.sync(now, false)
	s.firstRoundProgress()
	for h, t := range s.targets {
		if t.probing || now.Before(t.next) {
			continue
		}
		t.probing = true
		t.next = t.next.Add(s.wait())
		if t.next.Before(now) { // the last probe outlived its interval: do not catch up in a burst
			t.next = now.Add(s.wait())
		}
		s.start(h)
	}
	s.publish(now)
}

// sync adds the backends that appeared (due at a random point of the first
// interval when initial, else at once) and forgets the ones removed.
func (s *healthState) sync(now time.Time, initial bool) {
	hs := s.cfg.Backends()
	seen := make(map[*backendactor.Handle]bool, len(hs))
	for _, h := range hs {
		seen[h] = true
		if _, ok := s.targets[h]; ok {
			continue
		}
		due := now
		if initial {
			due = now.Add(time.Duration(s.cfg.Rand.Float64() * float64(s.cfg.Interval)))
		}
		s.targets[h] = &probeTarget{next: due}
		if initial {
			s.firstPending[h] = true
		}
		if s.checks != nil {
			for _, r := range probeResults {
				s.checks.WithLabelValues(s.cfg.Pool, h.URL(), r)
			}
		}
	}
	for h := range s.targets {
		if !seen[h] {
			delete(s.targets, h)
			delete(s.firstPending, h)
			if s.checks != nil {
				s.checks.DeletePartialMatch(prometheus.Labels{"pool": s.cfg.Pool, "backend": h.URL()})
			}
		}
	}
}

// wait draws the time to the next probe: Interval x (1 ± Jitter).
func (s *healthState) wait() time.Duration {
	f := 1 + s.cfg.Jitter*(2*s.cfg.Rand.Float64()-1)
	return time.Duration(f * float64(s.cfg.Interval))
}

// start probes h on a goroutine the actor owns and waits for in Stopped.
func (s *healthState) start(h *backendactor.Handle) {
	s.wg.Add(1)
	timeout := s.cfg.Timeout // read here: Reconfigure changes it on the actor's goroutine
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(s.ctx, timeout)
		res := s.cfg.Prober.Probe(ctx, h)
		cancel()
		// Send waits for room, but not past the checker's stop.
		_ = s.ref.Send(s.ctx, probeDone{h: h, res: res, at: time.Now()})
	}()
}

// done counts a result and hands it to the backend's actor, the owner of
// its health.
func (s *healthState) done(m probeDone) {
	s.probes++
	t, ok := s.targets[m.h]
	if !ok {
		return // removed while probed: its actor is retiring
	}
	t.probing = false
	if s.checks != nil {
		s.checks.WithLabelValues(s.cfg.Pool, m.h.URL(), m.res.Result).Inc()
	}
	if m.res.Result == ProbeLocalError {
		s.cfg.Logger.Warn("health probe not made", "pool", s.cfg.Pool, "backend", m.h.URL(), "detail", m.res.Detail)
		return // the backend keeps its health; the next probe is due as usual
	}
	pass := m.res.OK()
	// Log changes only: the first failure, the first success after failures.
	if (t.lastOK == nil && !pass) || (t.lastOK != nil && *t.lastOK != pass) {
		lvl := slog.LevelInfo
		if !pass {
			lvl = slog.LevelWarn
		}
		s.cfg.Logger.Log(s.ctx, lvl, "health probe", "pool", s.cfg.Pool, "backend", m.h.URL(), "result", m.res.Result, "detail", m.res.Detail)
	}
	t.lastOK = &pass
	// The backend's mailbox is nearly always empty; a short wait covers a
	// burst of admin commands without letting one backend stall the checker.
	ctx, cancel := context.WithTimeout(s.ctx, 100*time.Millisecond)
	defer cancel()
	if err := m.h.HealthResult(ctx, pass, m.at, m.res.Detail); err != nil && !errors.Is(err, actor.ErrStopped) {
		s.cfg.Logger.Warn("health checker: backend did not take the probe result", "backend", m.h.URL(), "err", err)
	}
	delete(s.firstPending, m.h)
	s.firstRoundProgress()
}

// firstRoundProgress closes FirstRound when no initial backend waits for
// its first result any more.
func (s *healthState) firstRoundProgress() {
	if s.firstPending != nil && len(s.firstPending) == 0 {
		s.firstPending = nil
		close(s.hc.firstRound)
	}
}

func (s *healthState) publish(now time.Time) {
	probing := 0
	for _, t := range s.targets {
		if t.probing {
			probing++
		}
	}
	s.hc.status.Store(&HealthStatus{
		Pool: s.cfg.Pool, Backends: len(s.targets), Probing: probing, Probes: s.probes, LastTick: now,
		Interval: s.cfg.Interval.String(), StartedAt: s.started,
	})
	if s.ref != nil {
		s.ref.SetState(fmt.Sprintf("backends=%d probing=%d probes=%d", len(s.targets), probing, s.probes))
	}
}

// Stopped cancels the probes in flight and waits for their goroutines, so a
// stopped checker leaves nothing behind, not even its pool's series.
func (s *healthState) Stopped() {
	s.cancel()
	s.wg.Wait()
	if s.firstPending != nil { // nobody waits for a round that will never end
		s.firstPending = nil
		close(s.hc.firstRound)
	}
	if s.checks != nil {
		s.checks.DeletePartialMatch(prometheus.Labels{"pool": s.cfg.Pool})
	}
	if c, ok := s.cfg.Prober.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
