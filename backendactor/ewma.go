package backendactor

import (
	"math"
	"time"
)

// EWMA is a peak-sensitive exponentially weighted moving average of latency,
// as Finagle's and Linkerd's peak-EWMA balancers keep it: a sample above the
// average replaces it at once (a backend that just got slow is avoided from the
// very next pick), and below it the average decays towards the samples with a
// weight that depends on elapsed time rather than on the number of samples, so
// a busy backend and an idle one forget at the same speed.
type EWMA struct {
	Value time.Duration // zero until the first sample
	At    time.Time     // time of the last update
}

// Observe folds a window of samples (their mean and maximum) taken up to now.
// tau is the decay time constant: after tau the old value weighs 1/e.
func (e EWMA) Observe(mean, peak time.Duration, now time.Time, tau time.Duration) EWMA {
	switch {
	case e.At.IsZero() || e.Value == 0:
		// No history: start from the mean, unless the window already shows a peak.
		return EWMA{Value: max(mean, peak), At: now}
	case peak > e.Value:
		return EWMA{Value: peak, At: now}
	}
	w := math.Exp(-float64(now.Sub(e.At)) / float64(tau))
	v := w*float64(e.Value) + (1-w)*float64(mean)
	return EWMA{Value: time.Duration(v), At: now}
}
