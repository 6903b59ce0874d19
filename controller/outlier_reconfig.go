package controller

import (
	"context"
	"time"

	"github.com/lbd/lbd/actor"
)

type reconfigureOutlier struct {
	rules    OutlierRules
	interval time.Duration
	reply    chan<- error
}

// Reconfigure changes the detector's rules and success-rate interval while
// it runs; it returns once the actor applied them. Rules it cannot run
// with change nothing. The history of every backend (its ejections and
// multiplier) is kept, and ejections in force run their course: the
// backend actors own them.
//
//   - Rules: from the next poll on (the consecutive thresholds, the
//     ejection percent cap, the success-rate rule at the next window's
//     close); BaseEjection and MaxEjection for the next ejection.
//   - Interval: the success-rate window running ends at its start plus the
//     new interval (at the next poll if that is past); the multipliers are
//     forgiven per new interval from then on. The poll is at most the
//     interval, and the tick follows it.
func (d *OutlierDetector) Reconfigure(ctx context.Context, rules OutlierRules, interval time.Duration) error {
	if err := validateOutlier(rules, interval); err != nil {
		return err
	}
	err, askErr := actor.Ask(ctx, d.ref, func(r chan<- error) any { return reconfigureOutlier{rules, interval, r} })
	if askErr != nil {
		return askErr
	}
	return err
}

// reconfigure applies new settings on the actor's goroutine.
func (s *outlierState) reconfigure(rules OutlierRules, interval time.Duration, now time.Time) {
	start := s.nextWindow.Add(-s.cfg.Interval)
	s.cfg.Rules, s.cfg.Interval = rules, interval
	s.nextWindow = start.Add(interval)
	s.ref.SetTickEvery(s.poll())
	s.publish(now)
	s.cfg.Logger.Info("outlier detector reconfigured", "pool", s.cfg.Pool, "interval", interval.String(),
		"consecutive_5xx", rules.Consecutive5xx, "consecutive_gateway_failure", rules.ConsecutiveGateway,
		"base_ejection", rules.BaseEjection.String(), "max_ejection", rules.MaxEjection.String(),
		"max_ejection_percent", rules.MaxEjectionPercent)
}
