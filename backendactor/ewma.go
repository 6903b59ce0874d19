package backendactor

import (
	"math"
	"time"
)

// EWMA is a peak-sensitive exponentially weighted moving average of latency,
// after Finagle's and Linkerd's peak-EWMA balancers: a sample above the
// average replaces it at once (a backend that just got slow is avoided from
// the very next pick), and below it the average decays towards the samples
// with a weight that depends on elapsed time rather than on the number of
// samples, so a busy backend and an idle one forget at the same speed.
//
// lbd folds one sample per tick: the mean latency of the requests that
// finished in that window. Taking the window's maximum instead (the literal
// per-request peak) made healthy backends look as slow as their worst
// scheduling hiccup under load — on a loaded 2-core box a 1.5 ms backend read
// 5-6 ms — which let a backend that is really 20 ms slower win picks and set
// the p99. The mean still jumps at once when a backend turns slow, because
// then every request in the window is slow.
type EWMA struct {
	Value time.Duration // zero until the first sample
	At    time.Time     // time of the last update
}

// Observe folds one sample (a window's mean latency) taken at now. tau is the
// decay time constant: after tau the old value weighs 1/e.
func (e EWMA) Observe(sample time.Duration, now time.Time, tau time.Duration) EWMA {
	if e.At.IsZero() || e.Value == 0 || sample > e.Value {
		return EWMA{Value: sample, At: now}
	}
	w := math.Exp(-float64(now.Sub(e.At)) / float64(tau))
	v := w*float64(e.Value) + (1-w)*float64(sample)
	return EWMA{Value: time.Duration(v), At: now}
}
