package controller

import (
	"math"
	"time"
)

// Window is what the limiter learned in one control interval: the input of
// the pure decision functions (AIMD.Next, Gradient2.Next).
type Window struct {
	Samples  int           // requests that completed in the interval
	Failures int           // of those, 5xx answers and timeouts
	Latency  time.Duration // the configured percentile of their latency (0 without samples)
	Peak     int           // highest number of requests in flight at once
	Rejected int           // requests the soft limit refused

	// PrevFailureRate is the failure share of the previous interval that
	// had samples, so that Next can tell failures that rose from a steady
	// background rate of errors.
	PrevFailureRate float64
	// Rising says the peak in flight grew markedly in this interval and in
	// the one before (see rising): requests are piling up faster than they
	// complete, which is how an overload starts before it reaches the limit.
	Rising bool
	// PrevInPlay says the limit was in play in the previous interval. An
	// interval in which nothing at all happened right after one with the
	// limit in play is more likely a stall of lbd itself (the process
	// descheduled, the tick late) than demand gone away, and must not make
	// an overloaded limit grow back.
	PrevInPlay bool
}

// empty reports an interval in which nothing was admitted, refused or
// completed.
func (w Window) empty() bool { return w.Samples == 0 && w.Peak == 0 && w.Rejected == 0 }

// unused says the limit may grow back: out of play, and not an empty
// interval right after one with the limit in play.
func (w Window) unused(limit float64) bool {
	return !w.inPlay(limit) && !(w.empty() && w.PrevInPlay)
}

// FailureRate is Failures over Samples, 0 without samples.
func (w Window) FailureRate() float64 {
	if w.Samples == 0 {
		return 0
	}
	return float64(w.Failures) / float64(w.Samples)
}

// failureRiseThreshold is how many percentage points the failure share must
// gain over the previous interval to count as "failures rose". A backend
// that always answers some requests with 500 (a bad path, a broken record)
// is not overloaded, and cutting the limit would not help it; a jump in
// 5xx and timeouts is the overload signal the latency may not yet show.
const failureRiseThreshold = 0.02

func (w Window) failuresRose() bool {
	return w.Failures > 0 && w.FailureRate() > w.PrevFailureRate+failureRiseThreshold
}

// limitReached says the limit was the binding constraint: demand touched
// it, so a higher limit might be used.
func (w Window) limitReached(limit float64) bool {
	return w.Rejected > 0 || float64(w.Peak) >= math.Floor(limit)
}

// inPlay says the limit has a say in what happens: it was reached, at least
// half of it was in use, or requests are piling up towards it. Only then can
// a high latency be lbd's doing — requests it admitted queueing in front of
// the backends — and a lower limit shorten the queue. Slow backends with the
// limit out of play ("slow and idle": a slow dependency, a GC pause, a
// service that is simply slower) are not overloaded, and cutting would only
// refuse what they serve.
func (w Window) inPlay(limit float64) bool {
	return w.limitReached(limit) || float64(w.Peak) >= limit/2 || w.Rising
}

// rising reports whether the peaks of three consecutive intervals (oldest
// first) climbed by at least max(floor, 10% of the earlier peak) twice in a
// row. The onset of a slow spell raises the peak once (Little's law: in
// flight = rate x latency, and the rate did not change); an arrival rate
// above what the backends complete raises it every interval.
func rising(p0, p1, p2, floor int) bool {
	return grew(p0, p1, floor) && grew(p1, p2, floor)
}

// grew reports whether the peak in flight climbed from a to b by at least
// max(floor, 10% of a): one step of rising.
func grew(a, b, floor int) bool { return b-a >= max(floor, a/10) && b > a }

// AIMD is additive-increase/multiplicative-decrease on the latency of
// completed requests (the law is written out in the package doc):
//
//   - the latency percentile is over Target, or failures rose, while the
//     limit is in play: multiply the smaller of the limit and the peak in
//     flight by DecreaseFactor;
//   - otherwise, under Target and the limit reached: add Increase;
//   - under Target and less than half the limit in use, nothing refused:
//     double it (towards Max), so that a cut is undone within a few
//     intervals once a spell is over, whether or not traffic comes back up
//     to the limit;
//   - otherwise keep it. The result is clamped to [Min, Max].
//
// The decrease applies to the smaller of the limit and the peak in flight:
// when the limit sits far above what is used (at start, after a quiet
// spell), cutting the unused headroom by 30% changes nothing, and the queue
// in front of the backends would keep growing for several intervals while
// the limit walked down to where it binds.
//
// Target is the effective target for this interval: the limiter derives it
// from the backends' own baseline in relative mode (see Baseline).
type AIMD struct {
	Target         time.Duration
	Min, Max       float64
	Increase       float64
	DecreaseFactor float64
}

// Next returns the limit for the next interval.
func (a AIMD) Next(limit float64, w Window) float64 {
	over := (w.Samples > 0 && w.Latency > a.Target) || w.failuresRose()
	switch {
	case over && w.inPlay(limit):
		base := limit
		if w.Peak > 0 {
			base = min(limit, float64(w.Peak))
		}
		limit = base * a.DecreaseFactor
	case over:
		// Slow and idle: the limit is not what keeps latency up.
	case w.Samples > 0 && w.limitReached(limit):
		limit += a.Increase
	case w.unused(limit):
		limit = regrow(limit, a.Increase)
	}
	return clamp(limit, a.Min, a.Max)
}

// regrow is the step of a limit that is out of play under target: double,
// and at least the additive step.
func regrow(limit, step float64) float64 { return max(2*limit, limit+step) }

// SlowStart is how the limit starts when configured to (aimd.slow_start),
// as TCP's congestion window does: from min_limit, doubling each interval in
// which it was reached, until the algorithm first calls for a decrease (next
// < limit), or latency exceeds target, or failures rose (which may not lower
// a limit already at its floor); from then on the algorithm alone steers. It
// returns the limit and whether slow start goes on. While it goes on, a
// limit that was not reached holds: slow start grows the limit only as far
// as demand has shown it is needed, which the algorithm's regrowth of an
// unused limit (towards max) would undo.
//
// The trade-off, measured in docs/SCENARIOS.md: starting at max_limit (the
// default) refuses nothing the backends could serve, but an lbd that starts
// under overload admits up to max_limit requests before the first interval
// ends, and they queue in the backends for seconds; slow start avoids that
// queue at the price of refusing, for a few intervals, requests beyond a
// limit that is still growing.
func SlowStart(limit, next, max float64, target time.Duration, w Window) (float64, bool) {
	if next < limit || w.Latency > target || w.failuresRose() {
		return next, false
	}
	if w.Samples > 0 && w.limitReached(limit) {
		return min(2*limit, max), true
	}
	return limit, true
}

func clamp(v, lo, hi float64) float64 {
	return min(max(v, lo), hi)
}
