package backendactor

import (
	"fmt"
	"time"
)

// BreakerState is the position of a circuit breaker.
type BreakerState uint8

// The three breaker states.
const (
	Closed   BreakerState = iota // requests flow; consecutive failures are counted
	Open                         // no requests until the open time passes
	HalfOpen                     // a quota of probe requests decides
)

func (s BreakerState) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half_open"
	}
	return fmt.Sprintf("breaker(%d)", s)
}

// MarshalText writes the state's name.
func (s BreakerState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a name MarshalText wrote (clients of the admin API).
func (s *BreakerState) UnmarshalText(b []byte) error {
	for _, st := range []BreakerState{Closed, Open, HalfOpen} {
		if string(b) == st.String() {
			*s = st
			return nil
		}
	}
	return fmt.Errorf("breaker state %q: want closed, open or half_open", b)
}

// BreakerConfig parameterises the breaker.
type BreakerConfig struct {
	FailureThreshold int           // consecutive failures that open a closed breaker
	OpenFor          time.Duration // first open period
	MaxOpenFor       time.Duration // cap on the doubled open period
	HalfOpenProbes   int           // requests admitted while half-open
}

// Breaker is the circuit breaker's state. It is a value: Next returns a new one.
//
// The state machine:
//
//	closed    --(consecutive failures >= threshold)--> open (for OpenFor)
//	open      --(open period elapsed)-------------------> half-open (HalfOpenProbes admitted)
//	half-open --(a probe succeeds)-----------------------> closed
//	half-open --(a probe fails)--------------------------> open, for twice the last period (capped)
//
// The open period grows with each consecutive trip so a backend that keeps
// failing its probes is tried less and less often.
type Breaker struct {
	State     BreakerState
	Until     time.Time // end of the open period
	Trips     int       // consecutive trips without a successful close
	OpenedFor time.Duration
}

// BreakerInput is what the backend actor learned since the last step.
type BreakerInput struct {
	ConsecutiveFailures int64 // current run of failures, as counted by the handle
	Successes, Failures int64 // outcomes in the window
}

// Next returns the breaker after observing in at time now.
func (b Breaker) Next(in BreakerInput, now time.Time, c BreakerConfig) Breaker {
	switch b.State {
	case Closed:
		if c.FailureThreshold > 0 && in.ConsecutiveFailures >= int64(c.FailureThreshold) {
			return b.open(now, c)
		}
	case Open:
		if !now.Before(b.Until) {
			b.State = HalfOpen
		}
	case HalfOpen:
		switch {
		case in.Failures > 0:
			return b.open(now, c)
		case in.Successes > 0:
			return Breaker{State: Closed}
		}
	}
	return b
}

func (b Breaker) open(now time.Time, c BreakerConfig) Breaker {
	d := c.OpenFor
	if b.Trips > 0 && b.OpenedFor > 0 {
		d = 2 * b.OpenedFor
	}
	if c.MaxOpenFor > 0 && d > c.MaxOpenFor {
		d = c.MaxOpenFor
	}
	return Breaker{State: Open, Until: now.Add(d), Trips: b.Trips + 1, OpenedFor: d}
}
