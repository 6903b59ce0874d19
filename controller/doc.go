// Package controller holds lbd's control loops, each its own actor: the
// AIMD (or Gradient2) admission limiter, the active health checker, the
// outlier detector, the predictive scaling advisory and the metrics dumper.
// They act on time and on what backends publish, and change the system only
// by messages to the owning actor (backend actors, the scheduler) or by
// publishing a value of their own (the admission limit) that the data plane
// reads atomically.
package controller
