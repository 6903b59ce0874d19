package controller

import (
	"log/slog"

	"github.com/lbd/lbd/config"
)

// LimiterConfigFor maps the config file's "aimd" section onto the
// limiter's settings: the one place that knows both, so that a field added
// to one is not forgotten in the other.
func LimiterConfigFor(a config.AIMD, logger *slog.Logger) LimiterConfig {
	return LimiterConfig{
		Algorithm: a.Algorithm, Target: a.TargetLatency.D(), TargetMode: a.TargetMode, Tolerance: a.Tolerance,
		Percentile: a.Percentile, MinLimit: a.MinLimit, MaxLimit: a.MaxLimit, Increase: a.Increase,
		DecreaseFactor: a.DecreaseFactor, Interval: a.Interval.D(), SlowStart: a.SlowStart, Logger: logger,
	}
}
