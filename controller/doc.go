// Package controller holds lbd's control loops, each its own actor: the
// AIMD (or Gradient2) admission limiter, the active health checker, the
// outlier detector, the predictive scaling advisory and the metrics dumper.
// They act on time and on what backends publish, and change the system only
// by messages to the owning actor (backend actors, the scheduler) or by
// publishing a value of their own (the admission limit) that the data plane
// reads atomically.
//
// # The adaptive concurrency limit
//
// The limiter (Limiter, fed by proxy.Admission) closes an interval every
// aimd.interval (Δ, 500 ms) and computes, from the requests that completed
// in it: n completions, the latency percentile L (p90 by default), the peak
// in flight P, the refusals R, and the failure share. With ℓ the limit,
// β the decrease factor, a the additive step, [lo, hi] = [min_limit,
// max_limit]:
//
//	reached = R > 0  or  P ≥ ⌊ℓ⌋
//	rising  = P grew by ≥ max(lo, 10%) in this interval and the one before
//	in play = reached  or  P ≥ ℓ/2  or  rising
//	T       = target_latency                             (absolute mode)
//	        = max(target_latency, tolerance × B)         (relative mode, the default)
//	over    = (n > 0 and L > T)  or  failures rose by 2 points
//
// and AIMD's law is
//
//	ℓ' = β × min(ℓ, P)      if over and in play     (multiplicative decrease)
//	ℓ' = ℓ                  if over and not in play ("slow and idle")
//	ℓ' = ℓ + a              if reached and n > 0     (additive increase)
//	ℓ' = max(2ℓ, ℓ + a)     if not in play¹          (an unused limit grows back)
//	ℓ' = ℓ                  otherwise
//	ℓ' = clamp(ℓ', lo, hi)
//
// ¹ except an interval in which nothing at all happened right after one
// with the limit in play: that is lbd stalled (descheduled, its tick late),
// not demand gone, and the limit holds.
//
// Gradient2 (Netflix) replaces the first and third lines by
// ℓ' = ℓ × clamp(T/L, 0.5, 1) + queue (see Gradient2) and keeps the others.
//
// Three properties come out of it, each against a way a limiter turns a blip
// into an outage:
//
//   - A cut needs the limit in play. If fewer than half of ℓ requests are in
//     flight, nothing was refused and demand is not piling up, a high
//     latency is the backends' (a slow dependency, a pause), not a queue lbd
//     admitted, and a lower limit would only refuse what they serve. At 100
//     requests/s a 150 ms spell holds ~15 requests in flight: it cuts
//     nothing. An overload does put the limit in play: demand above what the
//     backends complete raises P every interval (rising) until it reaches
//     ℓ/2 or ℓ.
//   - A limit out of play grows back, doubling each interval, whether or not
//     traffic reaches it: a limit cut during an overload is back at max
//     within log2(hi/ℓ) intervals of the overload's end (45 -> 1024: 5
//     intervals, 2.5 s), instead of +a per interval only while reached,
//     which at light load is never.
//   - In relative mode T is judged against B, the backends' own latency (see
//     Baseline): the percentile of steady intervals (the peak in flight not
//     climbing) in which the limit was out of play, falling at once to a
//     lower value and rising towards a higher one with a 30 s time constant. Backends that always take 120 ms have B ≈
//     120 ms and T = 240 ms: they are not throttled for being slow.
//     target_latency stays a floor of T, so fast backends are judged as in
//     absolute mode (a 1 ms baseline must not make 2.5 ms an overload). B
//     never learns from intervals with the limit in play, nor from the
//     first interval of an overload (its peak climbs), so an overload cannot
//     teach it that overloaded is normal (Gradient2's drift); when the limit
//     is at lo and still over T, the latency there is taken as B.
//
// Starting at hi (the default) refuses nothing at start; aimd.slow_start
// starts at lo and doubles while reached (SlowStart).
package controller
