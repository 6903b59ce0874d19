package discovery

import "time"

// schedule decides when the next lookup is due. Its methods are pure: the
// random draw u (uniform in [0, 1)) is passed in.
type schedule struct {
	refresh time.Duration // the configured refresh: the longest wait
	floor   time.Duration // the shortest wait, whatever the TTL
	jitter  float64       // fraction of a wait that may be taken off
	tick    time.Duration // how late after its time a lookup may start
}

// afterAnswer is the wait after an answer whose records live t:
// min(refresh, t) less one tick, since a lookup starts at the first tick
// after it is due and must start by then; jittered.
func (s schedule) afterAnswer(t ttl, u float64) time.Duration {
	d := s.refresh
	if t.set && t.d < d {
		d = t.d
	}
	return s.jittered(d-s.tick, u)
}

// afterFailure is the wait after the n-th failure in a row (n >= 1): the
// floor, doubled at each further failure, capped at refresh, jittered. A
// resolver that is down is asked again soon, then less and less often,
// but never less often than a healthy one would be.
func (s schedule) afterFailure(n int, u float64) time.Duration {
	d := s.floor
	for i := 1; i < n && d < s.refresh; i++ {
		d *= 2
	}
	return s.jittered(min(d, s.refresh), u)
}

// jittered takes up to jitter x d off d, so that sources (and lbd replicas)
// that started together drift apart. It only ever shortens a wait, so a
// lookup is never due after its TTL; then the floor applies.
func (s schedule) jittered(d time.Duration, u float64) time.Duration {
	d -= time.Duration(u * s.jitter * float64(d))
	return max(d, s.floor)
}
