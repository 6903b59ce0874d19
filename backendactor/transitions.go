package backendactor

import (
	"fmt"
	"time"
)

// Transition kinds.
const (
	KindState   = "state"   // the backend's state (States), or "added" / "removed"
	KindBreaker = "breaker" // the circuit breaker's state
)

// Pseudo-states of a backend's first and last transitions.
const (
	StateAdded   = "" // the From of the transition that brings a backend in
	StateRemoved = "removed"
)

// Transition is one change of a backend's state or breaker, with its cause
// in words, as the actor that made the change knew it: the probe result
// and the rise/fall count, the outlier rule that ejected it, the admin or
// reload command, the breaker's run of failures.
type Transition struct {
	At       time.Time
	URL      string
	Name     string // the backend's optional name (Config.Label)
	Kind     string // KindState or KindBreaker
	From, To string
	Cause    string
}

// The causes that need no more than the command that made them.
const (
	causeWarmReset    = "admin warm-reset"
	causeChecksOff    = "active health checks turned off"
	causeRestart      = "backend actor restarted after a panic"
	causeEjectionOver = "ejection over"
	causeWarmupOver   = "warm-up over"
)

// because records why the state is about to change; the first cause given
// in one step wins (a step is a message or a tick, then publish).
func (s *state) because(c string) {
	if s.cause == "" {
		s.cause = c
	}
}

// emit keeps the transition's cause for Stats and reports the transition
// to the sink, if there is one. It runs on the actor's goroutine; the sink
// must not block.
func (s *state) emit(now time.Time, kind, from, to, cause string) {
	if kind == KindBreaker {
		s.last.breaker = cause
	} else {
		s.last.state, s.last.since = cause, now
	}
	if s.cfg.OnTransition == nil {
		return
	}
	s.cfg.OnTransition(Transition{At: now, URL: s.h.url, Name: s.label, Kind: kind, From: from, To: to, Cause: cause})
}

// lastCauses are why the backend is in its state and its breaker in its
// position, as its last transitions said (Stats.StateCause, BreakerCause).
type lastCauses struct {
	state, breaker string
	since          time.Time
}

// transitions reports what changed between two published snapshots (prev
// nil: the backend joins) and forgets the step's causes.
func (s *state) transitions(now time.Time, prev, next *Snapshot) {
	defer func() { s.cause, s.breakerCause = "", "" }()
	if prev == nil {
		s.emit(now, KindState, StateAdded, next.State, s.cfg.JoinCause)
		if next.Breaker != Closed {
			s.emit(now, KindBreaker, Closed.String(), next.Breaker.String(), s.breakerCause)
		}
		return
	}
	// A backend being removed says so once (Retire): its drain is part of it.
	if prev.State != next.State && (s.retireBy.IsZero() || next.State != StateDraining) {
		s.emit(now, KindState, prev.State, next.State, s.stateCause(prev.State, next.State))
	}
	if prev.Breaker != next.Breaker {
		c := s.breakerCause
		if c == "" {
			c = "breaker: " + next.Breaker.String()
		}
		s.emit(now, KindBreaker, prev.Breaker.String(), next.Breaker.String(), c)
	}
}

// stateCause is the step's cause, or for a change no command made, the
// timer that ran out.
func (s *state) stateCause(from, to string) string {
	switch {
	case s.cause != "":
		return s.cause
	case from == StateEjected:
		return causeEjectionOver
	case from == StateWarming && to == StateHealthy:
		return causeWarmupOver
	}
	return fmt.Sprintf("%s -> %s", from, to)
}

// probeCause says why a probe result changed the backend's health: the
// probe's own words ("GET /healthz answered 500") and where the run stands
// against the threshold.
func probeCause(before, after Health, rise, fall int) string {
	d := after.LastDetail
	if d == "" {
		d = "failed"
		if after.Up {
			d = "passed"
		}
	}
	switch {
	case after.Up && before.Pending:
		return "first probe " + d
	case after.Up:
		return fmt.Sprintf("probe %s (%d of rise %d)", d, after.Good, max(rise, 1))
	}
	return fmt.Sprintf("probe %s (%d of fall %d)", d, after.Bad, max(fall, 1))
}

// breakerCause says why the breaker moved from prev to next in one fold.
func breakerCause(prev, next Breaker, run int64, c BreakerConfig) string {
	switch {
	case prev.State == Closed && next.State == Open:
		return fmt.Sprintf("breaker: %d consecutive failures (threshold %d); open for %s", run, c.FailureThreshold, next.OpenedFor)
	case prev.State == Open && next.State == HalfOpen:
		return fmt.Sprintf("breaker: open period of %s over; %d probe request(s) admitted", prev.OpenedFor, max(c.HalfOpenProbes, 1))
	case prev.State == HalfOpen && next.State == Open:
		return fmt.Sprintf("breaker: a probe request failed; open again for %s (trip %d)", next.OpenedFor, next.Trips)
	case prev.State == HalfOpen && next.State == Closed:
		return "breaker: a probe request succeeded"
	}
	return ""
}

// ejectCause is the outlier detector's reason with how long it lasts.
func ejectCause(reason, detail string, d time.Duration, n int) string {
	if detail == "" {
		detail = reason
	}
	return fmt.Sprintf("outlier: %s; ejected for %s (ejection %d)", detail, d.Round(time.Millisecond), n)
}
