package controller

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/lbd/lbd/actor"
)

// LimiterConfig configures the adaptive concurrency limiter (config section
// "aimd").
type LimiterConfig struct {
	Algorithm string        // "aimd" (default) or "gradient2"
	Target    time.Duration // target latency of completed requests (a floor in relative mode)
	// TargetMode is TargetRelative (the default, also for "") or
	// TargetAbsolute: see Baseline.Target.
	TargetMode string
	// Tolerance is how many times its baseline the latency may be in
	// relative mode before it counts as over target; 0 means
	// DefaultTolerance.
	Tolerance      float64
	Percentile     float64 // which latency percentile is compared, 0.9 = p90
	MinLimit       int
	MaxLimit       int
	Increase       int     // AIMD additive step
	DecreaseFactor float64 // AIMD multiplicative step
	Interval       time.Duration
	// SlowStart starts the limit at MinLimit and doubles it while it is
	// reached under target (see SlowStart); without it the limit starts at
	// MaxLimit.
	SlowStart bool
	Logger    *slog.Logger
}

// Validate reports the first setting the limiter cannot run with.
func (c LimiterConfig) Validate() error {
	switch {
	case c.Algorithm != "" && c.Algorithm != "aimd" && c.Algorithm != "gradient2":
		return fmt.Errorf("limiter algorithm %q: want aimd or gradient2", c.Algorithm)
	case c.Target <= 0:
		return fmt.Errorf("limiter target latency must be positive, got %v", c.Target)
	case c.TargetMode != "" && c.TargetMode != TargetRelative && c.TargetMode != TargetAbsolute:
		return fmt.Errorf("limiter target mode %q: want %s or %s", c.TargetMode, TargetRelative, TargetAbsolute)
	case c.Tolerance != 0 && !(c.Tolerance > 1):
		return fmt.Errorf("limiter tolerance must be above 1 (2 means twice the baseline), got %g", c.Tolerance)
	case c.Percentile <= 0 || c.Percentile > 1:
		return fmt.Errorf("limiter percentile must be in (0, 1], got %g", c.Percentile)
	case c.MinLimit < 1 || c.MaxLimit < c.MinLimit:
		return fmt.Errorf("limiter bounds [%d, %d]: want 1 <= min <= max", c.MinLimit, c.MaxLimit)
	case c.Interval <= 0:
		return fmt.Errorf("limiter interval must be positive, got %v", c.Interval)
	case c.Algorithm != "gradient2" && (c.DecreaseFactor <= 0 || c.DecreaseFactor >= 1 || c.Increase < 1):
		return fmt.Errorf("limiter aimd steps: want increase >= 1 and 0 < decrease factor < 1, got %d and %g", c.Increase, c.DecreaseFactor)
	}
	return nil
}

// withDefaults fills the settings a zero value leaves to lbd: aimd,
// relative to the backends' baseline, with DefaultTolerance.
func (c LimiterConfig) withDefaults() LimiterConfig {
	if c.Algorithm == "" {
		c.Algorithm = "aimd"
	}
	if c.TargetMode == "" {
		c.TargetMode = TargetRelative
	}
	if c.Tolerance == 0 {
		c.Tolerance = DefaultTolerance
	}
	return c
}

// Status is the limiter's state as last published: what /admin/metrics/json
// shows. The window fields describe the last completed interval.
type Status struct {
	Algorithm  string  `json:"algorithm"`
	Limit      int64   `json:"limit"`
	MinLimit   int     `json:"min_limit"`
	MaxLimit   int     `json:"max_limit"`
	TargetMS   float64 `json:"target_latency_ms"`
	TargetMode string  `json:"target_mode"`
	Percentile float64 `json:"percentile"`

	// EffectiveTargetMS is the target the last interval was judged by:
	// target_latency_ms, or in relative mode at least tolerance x baseline.
	EffectiveTargetMS float64 `json:"effective_target_ms"`
	LatencyMS         float64 `json:"latency_ms"`            // the percentile of the last interval with samples
	BaselineMS        float64 `json:"baseline_ms,omitempty"` // relative mode: the backends' own latency (Baseline); absolute gradient2: its long-term latency
	InPlay            bool    `json:"in_play"`               // the limit had a say in the last interval (reached, half used, or demand piling up)
	Samples           int     `json:"samples"`
	Failures          int     `json:"failures"`
	Peak              int     `json:"peak_inflight"`
	Rejected          int     `json:"rejected"`

	SlowStart bool      `json:"slow_start"`
	Increases uint64    `json:"increases"`
	Decreases uint64    `json:"decreases"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Limiter is the adaptive concurrency limit: the data plane reads Limit and
// feeds the sample window through Admitted, Rejected and Observe (atomics
// only, no messages); the limiter's actor folds the window on each tick
// through the configured algorithm and publishes the new limit. It
// implements proxy.SoftLimit.
type Limiter struct {
	ref    *actor.Ref
	limit  atomic.Int64
	window atomic.Pointer[samples]
	status atomic.Pointer[Status]
}

// NewLimiter starts the limiter actor. The limit starts at MaxLimit, so a
// freshly started lbd refuses nothing its backends can serve, and the first
// intervals over target bring it down (from the peak in flight); with
// c.SlowStart it starts at MinLimit and grows (see SlowStart), which keeps
// the first seconds of a cold start under overload from queueing.
func NewLimiter(reg *actor.Registry, c LimiterConfig) (*Limiter, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c = c.withDefaults()
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	l := &Limiter{}
	l.window.Store(new(samples))
	start := c.MaxLimit
	if c.SlowStart {
		start = c.MinLimit
	}
	l.limit.Store(int64(start))
	st := &limiterState{l: l, cfg: c, limit: float64(start), slowStart: c.SlowStart}
	st.publish(Window{}, c.Target, time.Now())
	l.ref = actor.Spawn(reg, st, actor.Options{
		Name: "admission-limiter", Kind: "aimd", Mailbox: 8, TickEvery: c.Interval, Logger: c.Logger,
	})
	return l, nil
}

// Limit is the current soft limit on requests in flight.
func (l *Limiter) Limit() int64 { return l.limit.Load() }

// Admitted records the in-flight count a request was admitted at.
func (l *Limiter) Admitted(inflight int64) { l.window.Load().admitted(inflight) }

// Rejected records a request the soft limit refused.
func (l *Limiter) Rejected() { l.window.Load().rejected.Add(1) }

// Observe records a completed request's latency and whether it failed
// (a 5xx or a timeout).
func (l *Limiter) Observe(latency time.Duration, failed bool) {
	l.window.Load().observe(latency, failed)
}

// Status returns the state the limiter last published.
func (l *Limiter) Status() Status { return *l.status.Load() }

// Stop stops the limiter's actor and waits for it, until ctx ends. The
// last limit stays readable.
func (l *Limiter) Stop(ctx context.Context) error { return l.ref.StopWait(ctx) }

// limiterState is the actor's private state; only its goroutine touches it.
type limiterState struct {
	l         *Limiter
	ref       *actor.Ref
	cfg       LimiterConfig
	limit     float64
	slowStart bool
	longRTT   time.Duration // gradient2's own long-window latency
	baseline  Baseline      // relative mode
	peaks     [2]int        // the two previous intervals' peaks in flight, oldest first
	prevFail  float64
	lastLat   time.Duration
	inPlay    bool
	incs      uint64
	decs      uint64
}

// Bind receives the actor's address before its goroutine starts.
func (s *limiterState) Bind(r *actor.Ref) {
	s.ref = r
	r.SetState(fmt.Sprintf("%s limit=%d", s.cfg.Algorithm, s.l.Limit()))
}

// Receive is the table of contents: the limiter runs on ticks and takes
// one command, a new configuration.
func (s *limiterState) Receive(msg any) {
	switch m := msg.(type) {
	case reconfigureLimiter:
		s.reconfigure(m.cfg, time.Now())
		m.reply <- nil
	default:
		s.cfg.Logger.Warn("limiter: unknown message", "type", fmt.Sprintf("%T", msg))
	}
}

// Restart resumes from the last published limit after a panic.
func (s *limiterState) Restart() { s.limit = float64(s.l.Limit()) }

// Tick closes the interval: swap the sample window, learn the baseline,
// run the algorithm against the effective target, publish.
func (s *limiterState) Tick(now time.Time) {
	old := s.l.window.Swap(new(samples))
	lat, n := old.quantile(s.cfg.Percentile)
	w := Window{
		Samples: int(n), Failures: int(old.failed.Load()), Latency: lat,
		Peak: int(old.peak.Load()), Rejected: int(old.rejected.Load()),
		PrevFailureRate: s.prevFail, PrevInPlay: s.inPlay,
	}
	w.Rising = rising(s.peaks[0], s.peaks[1], w.Peak, s.cfg.MinLimit)
	steady := !grew(s.peaks[1], w.Peak, s.cfg.MinLimit)
	s.peaks = [2]int{s.peaks[1], w.Peak}
	if w.Samples > 0 {
		s.prevFail = w.FailureRate()
		s.lastLat = lat
	}
	target := s.learn(w, steady)
	prev := s.limit
	lo, hi := float64(s.cfg.MinLimit), float64(s.cfg.MaxLimit)
	var next float64
	switch s.cfg.Algorithm {
	case "gradient2":
		g := Gradient2{Target: target, Min: lo, Max: hi, Relative: s.cfg.TargetMode == TargetRelative}
		st := g.Next(Gradient2State{Limit: s.limit, LongRTT: s.longRTT}, w)
		next, s.longRTT = st.Limit, st.LongRTT
	default:
		a := AIMD{Target: target, Min: lo, Max: hi, Increase: float64(s.cfg.Increase), DecreaseFactor: s.cfg.DecreaseFactor}
		next = a.Next(s.limit, w)
	}
	if s.slowStart {
		next, s.slowStart = SlowStart(s.limit, next, hi, target, w)
	}
	s.limit = next
	switch {
	case s.limit > prev:
		s.incs++
	case s.limit < prev:
		s.decs++
	}
	s.publish(w, target, now)
}

// learn updates the baseline from the interval (relative mode) and returns
// the effective target to judge it by. The interval is judged by the
// baseline as it stood before it, so that an interval cannot excuse itself.
// Only a steady interval out of play teaches the baseline: one in which the
// peak in flight climbed may be the first interval of an overload, whose
// latency already holds the queue building up (the limit only comes into
// play an interval later).
func (s *limiterState) learn(w Window, steady bool) time.Duration {
	s.inPlay = w.inPlay(s.limit)
	if s.cfg.TargetMode == TargetAbsolute {
		return s.cfg.Target
	}
	before := s.baseline.Target(s.cfg.TargetMode, s.cfg.Target, s.cfg.Tolerance)
	atFloorOver := s.inPlay && s.limit <= float64(s.cfg.MinLimit) && w.Latency > before
	s.baseline = s.baseline.Next(w, s.inPlay || !steady, atFloorOver, s.cfg.Interval)
	if atFloorOver {
		return s.baseline.Target(s.cfg.TargetMode, s.cfg.Target, s.cfg.Tolerance)
	}
	return before
}

func (s *limiterState) publish(w Window, target time.Duration, now time.Time) {
	limit := int64(math.Floor(s.limit))
	s.l.limit.Store(limit)
	baseline := s.baseline.Value
	if s.cfg.TargetMode == TargetAbsolute {
		baseline = s.longRTT
	}
	s.l.status.Store(&Status{
		Algorithm: s.cfg.Algorithm, Limit: limit, MinLimit: s.cfg.MinLimit, MaxLimit: s.cfg.MaxLimit,
		TargetMS: ms(s.cfg.Target), TargetMode: s.cfg.TargetMode, Percentile: s.cfg.Percentile,
		EffectiveTargetMS: ms(target), LatencyMS: ms(s.lastLat), BaselineMS: ms(baseline), InPlay: s.inPlay,
		Samples: w.Samples, Failures: w.Failures, Peak: w.Peak, Rejected: w.Rejected,
		SlowStart: s.slowStart, Increases: s.incs, Decreases: s.decs, UpdatedAt: now,
	})
	if s.ref != nil {
		s.ref.SetState(fmt.Sprintf("%s limit=%d p%g=%.1fms target=%.1fms", s.cfg.Algorithm, limit, s.cfg.Percentile*100, ms(s.lastLat), ms(target)))
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
