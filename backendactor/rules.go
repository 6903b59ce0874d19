package backendactor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// Rules are the settings a backend actor judges its backend by, the same
// for every backend of a pool: the breaker, the health thresholds and the
// warm-up ramp. A reload changes them with SetRules while the actor runs,
// and the backend keeps everything it learned (EWMA, counters, breaker,
// health runs, ejection, drain, warm-up start).
type Rules struct {
	Breaker          BreakerConfig
	Rise, Fall       int
	Warmup           time.Duration
	WarmupMinPercent int
	// HealthChecked says an active health checker probes the backend. In a
	// template (scheduler.Config.Backend) it is StartUnhealthy: a backend
	// added at runtime waits for its first good probe.
	HealthChecked bool
}

// Validate names the first rule an actor cannot run with. The config
// package checks the file's values with their JSON paths first; this is the
// actor's own guard against a caller that skipped it.
func (r Rules) Validate() error {
	b := r.Breaker
	switch {
	case b.FailureThreshold < 0:
		return fmt.Errorf("breaker failure threshold must not be negative, got %d", b.FailureThreshold)
	case b.OpenFor < 0 || b.MaxOpenFor < 0:
		return fmt.Errorf("breaker open times must not be negative, got open_for %v and max_open_for %v", b.OpenFor, b.MaxOpenFor)
	case b.HalfOpenProbes < 0:
		return fmt.Errorf("breaker half-open probes must not be negative, got %d", b.HalfOpenProbes)
	case r.Rise < 0 || r.Fall < 0:
		return fmt.Errorf("health rise and fall must not be negative, got %d and %d", r.Rise, r.Fall)
	case r.Warmup < 0:
		return fmt.Errorf("warm-up duration must not be negative, got %v", r.Warmup)
	case r.WarmupMinPercent < 0 || r.WarmupMinPercent > 100:
		return fmt.Errorf("warm-up minimum weight must be between 0 and 100 percent, got %d", r.WarmupMinPercent)
	}
	return nil
}

// Rules returns the rules a template Config carries (StartUnhealthy read
// as HealthChecked, as in a template).
func (c Config) Rules() Rules {
	return Rules{Breaker: c.Breaker, Rise: c.Rise, Fall: c.Fall, Warmup: c.Warmup,
		WarmupMinPercent: c.WarmupMinPercent, HealthChecked: c.StartUnhealthy}
}

// WithRules returns the template c under rules r: the rule fields replaced,
// and StartUnhealthy set to r.HealthChecked.
func (c Config) WithRules(r Rules) Config {
	c.Breaker, c.Rise, c.Fall = r.Breaker, r.Rise, r.Fall
	c.Warmup, c.WarmupMinPercent = r.Warmup, r.WarmupMinPercent
	c.StartUnhealthy = r.HealthChecked
	return c
}

// ErrInvalidRules wraps what Rules.Validate found in SetRules.
var ErrInvalidRules = errors.New("invalid backend rules")

// SetRules replaces the backend's rules while it runs; it returns once the
// actor has applied them and published the result. Invalid rules change
// nothing. How each change takes effect:
//
//   - Breaker failure threshold: at the next decision, which SetRules takes
//     at once: a run of failures already at a lowered threshold opens the
//     breaker now, and the request path wakes the actor at the new value.
//   - Breaker open times: an open period running is never restarted or
//     lengthened (a longer open_for applies from the next trip); it is cut
//     to the period the new rules give its trip, counted from when it
//     opened (see Breaker.Capped), and one so cut that has run out turns
//     half-open now. Half-open probes: from the next half-open period.
//   - Rise and fall: at the next probe result; the current runs of good and
//     bad probes count towards the new thresholds.
//   - Warm-up: a ramp in progress continues from its start on the new
//     duration and minimum (it ends now if the new duration has already
//     passed); a backend not warming does not start to.
//   - HealthChecked false (active checks turned off): a backend down or
//     pending by its probes comes up now, with a warm-up ramp, and later
//     probe results are ignored. Only a probe can bring a backend up, so
//     without a checker it would stay out of rotation for good; traffic
//     alone judges it from now on (breaker, outlier detection), as it does
//     every backend of a config without active checks. Results ignored are
//     those of a checker stopping, still in flight.
//   - HealthChecked true: the current health stays as it is and the next
//     probes decide, by rise and fall.
func (h *Handle) SetRules(ctx context.Context, r Rules) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("backend %s: %w: %v", h.url, ErrInvalidRules, err)
	}
	return tell(ctx, h, func(a chan<- error) setRules { return setRules{r, a} })
}

// setRules applies r on the actor's goroutine (see SetRules).
func (s *state) setRules(r Rules, now time.Time) {
	s.cfg.Breaker, s.cfg.Rise, s.cfg.Fall = r.Breaker, r.Rise, r.Fall
	s.cfg.Warmup, s.cfg.WarmupMinPercent = r.Warmup, r.WarmupMinPercent
	s.h.threshold.Store(int64(r.Breaker.FailureThreshold))
	if capped := s.breaker.Capped(r.Breaker); capped != s.breaker {
		s.breaker = capped
		s.breakerCause = fmt.Sprintf("breaker: open period cut to %s by new rules", capped.OpenedFor)
	}
	s.fold(now)
	if !s.warmStart.IsZero() && now.Sub(s.warmStart) >= r.Warmup {
		s.warmStart = time.Time{}
	}
	s.unprobed = !r.HealthChecked
	if s.unprobed && !s.health.Up {
		s.because(causeChecksOff)
		s.health = Health{Up: true, LastProbe: s.health.LastProbe, LastDetail: "active health checks are off"}
		s.startWarmup(now)
	}
}

// period is the open period of a breaker's trip-th consecutive trip under
// c: OpenFor doubled per trip after the first, capped at MaxOpenFor (the
// sequence Breaker.Next follows).
func (c BreakerConfig) period(trip int) time.Duration {
	d := c.OpenFor
	for i := 1; i < trip && d > 0 && d < math.MaxInt64/2 && (c.MaxOpenFor <= 0 || d < c.MaxOpenFor); i++ {
		d *= 2
	}
	if c.MaxOpenFor > 0 && d > c.MaxOpenFor {
		d = c.MaxOpenFor
	}
	return d
}

// Capped returns the breaker under new rules c. An open period is cut to
// the period c gives its trip (open_for doubled per consecutive trip,
// capped at max_open_for), counted from when it opened, and never
// lengthened: a breaker open for 20 s on its second trip under open_for
// 10 s ends 4 s after it opened under open_for 2 s, and stays 20 s under
// open_for 30 s. A cut period may already be over; the next step then turns
// the breaker half-open. Other states are unchanged.
func (b Breaker) Capped(c BreakerConfig) Breaker {
	if b.State != Open {
		return b
	}
	if d := c.period(b.Trips); d < b.OpenedFor {
		b.Until = b.Until.Add(d - b.OpenedFor)
		b.OpenedFor = d
	}
	return b
}
