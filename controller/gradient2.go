package controller

import (
	"math"
	"time"
)

// Gradient2 is Netflix's Gradient2 concurrency limit (concurrency-limits,
// Gradient2Limit): the limit follows the ratio of a long-term latency
// baseline to the latency of the last interval.
//
//	long     = EMA of the interval latency over LongWindow intervals
//	           (decayed by 5% while it is over twice the interval latency,
//	           so it recovers after a period of high latency)
//	gradient = clamp(Tolerance x long / short, 0.5, 1)
//	limit'   = limit x gradient + QueueSize, smoothed: limit x (1-Smoothing) + limit' x Smoothing
//
// and the limit does not move while fewer than half of it were in use (the
// application, not the backends, is the bottleneck then).
//
// Two changes make it fit lbd, and both are deliberate:
//
//   - Target caps the tolerated latency: gradient uses min(Tolerance x long,
//     Target). Pure Gradient2 learns its baseline from what it sees, so a
//     service that starts under overload takes the overloaded latency as
//     normal; the operator's target_latency bounds that.
//   - Decreases are not smoothed and start from the smaller of the limit
//     and the peak in flight (as AIMD does); increases are smoothed. Netflix
//     updates the limit per sample window, many times a second; at lbd's
//     default 500 ms interval a smoothed decrease would take tens of
//     seconds to bring a limit that starts at max_limit down to where it
//     binds, with the queue growing all the while.
//
// A rise of failures counts as the smallest gradient, 0.5.
type Gradient2 struct {
	Target     time.Duration
	Min, Max   float64
	Tolerance  float64 // default 1.5
	Smoothing  float64 // default 0.2
	LongWindow int     // default 600 intervals
	QueueSize  float64 // default 4
}

// Gradient2State is the algorithm's memory between intervals.
type Gradient2State struct {
	Limit   float64
	LongRTT time.Duration // the baseline; 0 until the first sample
}

// Gradient2 defaults, from Netflix's Gradient2Limit.
const (
	defaultTolerance  = 1.5
	defaultSmoothing  = 0.2
	defaultLongWindow = 600
	defaultQueueSize  = 4
	minGradient       = 0.5
)

func (g Gradient2) withDefaults() Gradient2 {
	if g.Tolerance <= 0 {
		g.Tolerance = defaultTolerance
	}
	if g.Smoothing <= 0 || g.Smoothing > 1 {
		g.Smoothing = defaultSmoothing
	}
	if g.LongWindow <= 0 {
		g.LongWindow = defaultLongWindow
	}
	if g.QueueSize <= 0 {
		g.QueueSize = defaultQueueSize
	}
	return g
}

// Next returns the state for the next interval.
func (g Gradient2) Next(s Gradient2State, w Window) Gradient2State {
	g = g.withDefaults()
	s.Limit = clamp(s.Limit, g.Min, g.Max)
	if w.Samples == 0 || w.Latency <= 0 {
		return s
	}
	short := float64(w.Latency)
	long := float64(s.LongRTT)
	if long == 0 {
		long = short
	} else {
		alpha := 2 / float64(g.LongWindow+1)
		long = long*(1-alpha) + short*alpha
	}
	if long > 2*short {
		long *= 0.95
	}
	s.LongRTT = time.Duration(long)

	rose := w.failuresRose()
	if !rose && w.Rejected == 0 && float64(w.Peak) < s.Limit/2 {
		return s // application-limited: the latency says nothing about a higher limit
	}
	gradient := clamp(min(g.Tolerance*long, float64(g.Target))/short, minGradient, 1)
	if rose {
		gradient = minGradient
	}
	if gradient < 1 {
		base := s.Limit
		if w.Peak > 0 {
			base = min(base, float64(w.Peak))
		}
		s.Limit = clamp(base*gradient+g.QueueSize, g.Min, g.Max)
		if s.Limit > base { // the queue allowance must not turn a decrease into a rise
			s.Limit = clamp(math.Floor(base), g.Min, g.Max)
		}
		return s
	}
	next := s.Limit + g.QueueSize
	s.Limit = clamp(s.Limit*(1-g.Smoothing)+next*g.Smoothing, g.Min, g.Max)
	return s
}
