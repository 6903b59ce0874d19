package controller

import (
	"context"
	"time"

	"github.com/lbd/lbd/actor"
)

type reconfigureLimiter struct {
	cfg   LimiterConfig
	reply chan<- error
}

// Reconfigure changes the limiter's settings while it runs (aimd.* on a
// reload); it returns once the actor applied them, and settings it cannot
// run with change nothing. The limit in force is kept, clamped into the
// new [MinLimit, MaxLimit], so that a reload never reopens the gates a
// spell of overload closed or closes them at once; a change of algorithm
// starts the new one's memory afresh (Gradient2's long-window latency is
// learnt again), and so does a change of target_mode (the backends'
// baseline is learnt again in relative mode). Slow start, which only describes how a limiter begins, is not
// restarted. The interval takes effect from the next tick.
func (l *Limiter) Reconfigure(ctx context.Context, c LimiterConfig) error {
	if err := c.Validate(); err != nil {
		return err
	}
	c = c.withDefaults()
	err, askErr := actor.Ask(ctx, l.ref, func(r chan<- error) any { return reconfigureLimiter{c, r} })
	if askErr != nil {
		return askErr
	}
	return err
}

// reconfigure applies new settings on the actor's goroutine.
func (s *limiterState) reconfigure(c LimiterConfig, now time.Time) {
	if c.Logger == nil {
		c.Logger = s.cfg.Logger
	}
	if c.Algorithm != s.cfg.Algorithm {
		s.longRTT = 0
	}
	if c.TargetMode != s.cfg.TargetMode {
		s.baseline = Baseline{}
	}
	s.slowStart = s.slowStart && c.SlowStart
	s.cfg = c
	s.limit = clamp(s.limit, float64(c.MinLimit), float64(c.MaxLimit))
	s.ref.SetTickEvery(c.Interval)
	s.publish(Window{}, s.baseline.Target(c.TargetMode, c.Target, c.Tolerance), now)
	c.Logger.Info("adaptive limiter reconfigured", "algorithm", c.Algorithm, "limit", s.l.Limit(),
		"min_limit", c.MinLimit, "max_limit", c.MaxLimit, "target", c.Target.String(), "target_mode", c.TargetMode,
		"tolerance", c.Tolerance, "interval", c.Interval.String())
}
