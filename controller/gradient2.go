package controller

import (
	"math"
	"time"
)

// Gradient2 is Netflix's Gradient2 concurrency limit (concurrency-limits,
// Gradient2Limit): the limit follows the ratio of a tolerated latency to the
// latency of the last interval.
//
//	long      = EMA of the interval latency over LongWindow intervals
//	            (decayed by 5% while it is over twice the interval latency,
//	            so it recovers after a period of high latency)
//	tolerated = Target                        if Relative (the limiter's effective target)
//	          = min(Tolerance x long, Target) otherwise
//	gradient  = clamp(tolerated / short, 0.5, 1)
//	limit'    = limit x gradient + QueueSize, smoothed: limit x (1-Smoothing) + limit' x Smoothing
//
// and, as for AIMD, the limit is only cut while it is in play
// (Window.inPlay); out of play and under the tolerated latency it doubles
// back towards Max, out of play and over it holds.
//
// Three changes make it fit lbd, and all are deliberate:
//
//   - In absolute mode Target caps the tolerated latency: pure Gradient2
//     learns its baseline from what it sees, so a service that starts under
//     overload takes the overloaded latency as normal; the operator's
//     target_latency bounds that. In relative mode the limiter passes its
//     own effective target, built on a baseline that learns only while the
//     limit is out of play (see Baseline), which does not have that flaw.
//   - Decreases are not smoothed and start from the smaller of the limit
//     and the peak in flight (as AIMD does); increases are smoothed. Netflix
//     updates the limit per sample window, many times a second; at lbd's
//     default 500 ms interval a smoothed decrease would take tens of
//     seconds to bring a limit that starts at max_limit down to where it
//     binds, with the queue growing all the while.
//   - Netflix holds the limit while fewer than half of it are in use; lbd
//     lets it grow back, so a limit cut during a spell does not stay cut
//     at light load.
//
// A rise of failures counts as the smallest gradient, 0.5.
type Gradient2 struct {
	Target     time.Duration
	Min, Max   float64
	Tolerance  float64 // default 1.5
	Smoothing  float64 // default 0.2
	LongWindow int     // default 600 intervals
	QueueSize  float64 // default 4
	// Relative makes Target the tolerated latency as is (the limiter's
	// effective target in relative mode) instead of a cap on Tolerance x long.
	Relative bool
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
		if w.unused(s.Limit) { // idle: nothing refused, nothing in flight to speak of
			s.Limit = clamp(regrow(s.Limit, g.QueueSize), g.Min, g.Max)
		}
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
	tolerated := min(g.Tolerance*long, float64(g.Target))
	if g.Relative {
		tolerated = float64(g.Target)
	}
	gradient := clamp(tolerated/short, minGradient, 1)
	if rose {
		gradient = minGradient
	}
	if !w.inPlay(s.Limit) {
		if gradient >= 1 {
			s.Limit = clamp(regrow(s.Limit, g.QueueSize), g.Min, g.Max)
		}
		return s // over but out of play: the latency says nothing about the limit
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
