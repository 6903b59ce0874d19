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
//
// An estimate also ages without samples (Read): a backend that was slow gets
// no picks, hence no samples, and an estimate that only moved on samples
// would keep it starved for ever after it recovered (Traefik's leasttime has
// exactly that bug, traefik#12306). Finagle and tower decay the cost when it
// is read, cost x exp(-elapsed/tau); lbd's readers hold an immutable
// snapshot, so they compute the same decay from the time of the last sample
// instead of storing it back. With samples spaced by d and a grace G:
//
//	read(t)    = Value                                  if t - At <= G
//	           = Value x exp(-(t - At - G)/Tau)         after that
//	observe(s) = s                                      if s > read(now)
//	           = w x read(now) + (1-w) x s              otherwise, w = exp(-min(d, G)/Tau)
//
// The grace keeps a backend that is sampled every tick exactly where the
// plain time-weighted EWMA puts it (its readers never see it decay between
// two folds); past the grace the estimate falls towards zero as if the
// backend had answered in no time, so it is tried again, and the first
// samples it then gets either confirm it recovered or, being slower than the
// decayed estimate, put it straight back where it was.
type EWMA struct {
	Value time.Duration // zero until the first sample
	At    time.Time     // time of the last sample
}

// Decay is how an EWMA ages: Tau is the time constant (after Tau the old
// value weighs 1/e), Grace how long after its last sample an estimate holds
// still before it starts to fall.
type Decay struct {
	Tau, Grace time.Duration
}

// Read returns the estimate as of now (see EWMA).
func (e EWMA) Read(now time.Time, d Decay) time.Duration {
	idle := now.Sub(e.At) - d.Grace
	if idle <= 0 || e.Value == 0 || d.Tau <= 0 {
		return e.Value
	}
	return time.Duration(float64(e.Value) * math.Exp(-float64(idle)/float64(d.Tau)))
}

// Observe folds one sample (a window's mean latency) taken at now.
func (e EWMA) Observe(sample time.Duration, now time.Time, d Decay) EWMA {
	cur := e.Read(now, d)
	if e.At.IsZero() || cur == 0 || sample > cur {
		return EWMA{Value: sample, At: now}
	}
	// The time past the grace has already been spent decaying cur towards
	// zero; only the rest weighs the new sample in, so no interval counts
	// twice.
	w := math.Exp(-float64(min(now.Sub(e.At), d.Grace)) / float64(d.Tau))
	v := w*float64(cur) + (1-w)*float64(sample)
	return EWMA{Value: time.Duration(v), At: now}
}
