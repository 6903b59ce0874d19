package controller

import (
	"math"
	"time"
)

// AdvisoryRules shape the scaling advisory's baseline. Zero fields take the
// defaults in brackets.
//
// How the baseline is formed: each reading (a backend's peak-EWMA latency,
// or the mean over backends for "overall") first goes through a fast EWMA
// with time constant Fast [10s]; that is the "current" latency, smooth
// enough that one slow tick is not a trend. For the first Learn [1m] the
// baseline simply follows current. After that it is a slow EWMA of current
// with time constant Slow [10m], so it remembers roughly the last ten
// minutes and absorbs gradual drift (daily traffic curves) without
// warning. A warning starts when current stays above baseline x (1 +
// Threshold [0.15]) for Sustain [5] consecutive readings, and ends after
// Sustain readings back at or below it. While warning, the baseline is
// frozen, so a lasting rise does not become the new normal and silence its
// own warning; after Relearn [30m] of warning, though, the new level is
// accepted as the baseline (an operator has had half an hour to act) and
// the warning ends.
type AdvisoryRules struct {
	Threshold  float64
	Fast, Slow time.Duration
	Learn      time.Duration
	Sustain    int
	Relearn    time.Duration
}

func (r AdvisoryRules) withDefaults() AdvisoryRules {
	if r.Threshold <= 0 {
		r.Threshold = 0.15
	}
	if r.Fast <= 0 {
		r.Fast = 10 * time.Second
	}
	if r.Slow <= 0 {
		r.Slow = 10 * time.Minute
	}
	if r.Learn <= 0 {
		r.Learn = time.Minute
	}
	if r.Sustain <= 0 {
		r.Sustain = 5
	}
	if r.Relearn <= 0 {
		r.Relearn = 30 * time.Minute
	}
	return r
}

// Trend is the advisory's state for one series (a backend, or overall).
// Observe is a pure function of it; the advisory actor only sequences it.
type Trend struct {
	Current, Baseline float64   // seconds
	Since, At         time.Time // first and last reading
	Warning           bool
	WarningSince      time.Time
	streak            int // consecutive readings on the other side of the threshold
}

// TrendEvent is what one reading changed.
type TrendEvent uint8

// Trend events.
const (
	NoChange  TrendEvent = iota
	Warned               // latency rose above the threshold
	Cleared              // it came back
	Relearned            // the raised level became the baseline
)

// Learning reports whether the baseline is still being formed at now.
func (t Trend) Learning(now time.Time, r AdvisoryRules) bool {
	return now.Sub(t.Since) < r.withDefaults().Learn
}

// Rise is current over baseline minus one (0.2 is 20% above).
func (t Trend) Rise() float64 {
	if t.Baseline <= 0 {
		return 0
	}
	return t.Current/t.Baseline - 1
}

// Observe folds one reading v (seconds) taken at now.
func (t Trend) Observe(v float64, now time.Time, r AdvisoryRules) (Trend, TrendEvent) {
	r = r.withDefaults()
	if t.At.IsZero() {
		return Trend{Current: v, Baseline: v, Since: now, At: now}, NoChange
	}
	dt := now.Sub(t.At)
	if dt <= 0 {
		return t, NoChange
	}
	t.At = now
	t.Current = ewma(t.Current, v, dt, r.Fast)
	switch {
	case t.Learning(now, r):
		t.Baseline = t.Current
		return t, NoChange
	case !t.Warning:
		t.Baseline = ewma(t.Baseline, t.Current, dt, r.Slow)
	}
	above := t.Rise() > r.Threshold
	if above != t.Warning {
		t.streak++
	} else {
		t.streak = 0
	}
	switch {
	case !t.Warning && t.streak >= r.Sustain:
		t.Warning, t.WarningSince, t.streak = true, now, 0
		return t, Warned
	case t.Warning && t.streak >= r.Sustain:
		t.Warning, t.WarningSince, t.streak = false, time.Time{}, 0
		return t, Cleared
	case t.Warning && now.Sub(t.WarningSince) >= r.Relearn:
		t.Warning, t.WarningSince, t.streak = false, time.Time{}, 0
		t.Baseline = t.Current
		return t, Relearned
	}
	return t, NoChange
}

// ewma moves prev towards v by the weight that dt earns against the time
// constant tau, so the smoothing does not depend on the reading rate.
func ewma(prev, v float64, dt, tau time.Duration) float64 {
	w := math.Exp(-float64(dt) / float64(tau))
	return w*prev + (1-w)*v
}
