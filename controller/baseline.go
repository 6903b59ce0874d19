package controller

import (
	"math"
	"time"
)

// Target modes (config aimd.target_mode).
const (
	// TargetRelative judges latency against the backends' own baseline:
	// over target means over both target_latency and tolerance x baseline.
	TargetRelative = "relative"
	// TargetAbsolute judges latency against target_latency alone.
	TargetAbsolute = "absolute"
)

// Baseline learning, in relative mode.
const (
	// DefaultTolerance is how many times its baseline the latency may be
	// before it counts as over target: twice the usual percentile is a
	// queue, not noise.
	DefaultTolerance = 2.0
	// baselineWindow is how long the baseline takes to follow a latency that
	// rose for good (1/e of the gap is left after it). Far longer than a
	// spell, so that a spell does not teach the limiter that slow is normal.
	baselineWindow = 30 * time.Second
	// baselineMinSamples is the fewest completions an interval needs to
	// teach the baseline anything: a percentile of three requests is noise.
	baselineMinSamples = 10
)

// Baseline is the backends' own latency, as the limiter learns it: the
// configured percentile of intervals in which lbd queued nothing in front of
// them, that is, steady intervals with the limit out of play
// (Window.inPlay, and the peak in flight not climbing).
// It plays the part of Envoy's minRTT and of Gradient2's long-window RTT,
// without either's blind spot:
//
//   - it falls at once to a lower interval latency, and rises towards a
//     higher one only from intervals with the limit out of play, with time
//     constant baselineWindow (b += (L - b) x (1 - exp(-interval/window))).
//     Gradient2's baseline learns from every interval, so a service that
//     starts, or stays, overloaded takes its overloaded latency for normal
//     and the limit drifts up; Envoy measures minRTT by pinning concurrency
//     to a minimum for a while, which refuses traffic at every measurement.
//   - when the limit is at its floor (min_limit) and still over target,
//     there is no queue left that lbd could remove: the latency there is the
//     backends' own, and it becomes the baseline. That is how a service that
//     turned slower for good while demand held the limit in play is
//     recognised, instead of being refused for ever.
type Baseline struct {
	Value time.Duration // 0 until learned
}

// Target is the effective target latency: target in absolute mode, and in
// relative mode max(target, tolerance x baseline), so that target_latency
// stays a floor under which lbd never cuts (a baseline of 1 ms would
// otherwise call 2.5 ms of scheduling jitter an overload).
func (b Baseline) Target(mode string, target time.Duration, tolerance float64) time.Duration {
	if mode == TargetAbsolute || b.Value == 0 {
		return target
	}
	return max(target, time.Duration(tolerance*float64(b.Value)))
}

// Next learns from one interval: busy says whether the interval may hold a
// queue lbd admitted (the limit in play, or the peak in flight climbing),
// atFloorOver whether the limit was at min_limit with the latency over the
// effective target, and interval is the control interval.
func (b Baseline) Next(w Window, busy, atFloorOver bool, interval time.Duration) Baseline {
	if w.Samples < baselineMinSamples || w.Latency <= 0 {
		return b
	}
	l := w.Latency
	switch {
	case atFloorOver:
		b.Value = l
	case b.Value == 0:
		if !busy {
			b.Value = l
		}
	case l < b.Value:
		b.Value = l
	case !busy:
		a := 1 - math.Exp(-float64(interval)/float64(baselineWindow))
		b.Value += time.Duration(a * float64(l-b.Value))
	}
	return b
}
