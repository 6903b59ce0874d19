package controller

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/lbd/lbd/actor"
)

// HealthSettings are the health checker's settings that change while it
// runs (Reconfigure): the config section "health" less rise and fall,
// which the backend actors apply (backendactor.Rules).
type HealthSettings struct {
	Interval, Timeout time.Duration
	Jitter            float64
	// Path and ExpectedStatus are the prober's ("" and 0: its defaults,
	// /healthz and 200); the prober must be a CheckSetter to take them.
	Path           string
	ExpectedStatus int
}

// CheckSetter is a Prober whose request path and passing status can
// change (HTTPProber).
type CheckSetter interface {
	SetCheck(path string, expectedStatus int)
}

// Validate reports the first setting the checker cannot run with.
func (h HealthSettings) Validate() error {
	switch {
	case h.Interval <= 0:
		return fmt.Errorf("health interval must be positive, got %v", h.Interval)
	case h.Timeout <= 0:
		return fmt.Errorf("health timeout must be positive, got %v", h.Timeout)
	case !(h.Jitter >= 0 && h.Jitter <= 1):
		return fmt.Errorf("health jitter must be a fraction of the interval between 0 and 1, got %g", h.Jitter)
	case h.Path != "" && (!strings.HasPrefix(h.Path, "/") || strings.ContainsAny(h.Path, " \t\r\n")):
		return fmt.Errorf("health path must start with \"/\" and hold no spaces, got %q", h.Path)
	case h.ExpectedStatus != 0 && (h.ExpectedStatus < 100 || h.ExpectedStatus > 599):
		return fmt.Errorf("health expected status must be between 100 and 599, got %d", h.ExpectedStatus)
	}
	return nil
}

type reconfigureHealth struct {
	set   HealthSettings
	reply chan<- error
}

// Reconfigure changes the checker's settings while it runs; it returns
// once the actor applied them. Settings it cannot run with change nothing.
//
//   - Interval: the probes that were due later than the new interval allows
//     (Interval x (1 + Jitter) from now) are moved to a random moment
//     within one new interval, as at start, so a shorter interval takes
//     effect at once and without a burst: a backend due in 3s under 5s is
//     due within 1s under 1s. The others keep their time, and every later
//     wait is drawn from the new interval, so a longer one spreads the
//     probes out from each backend's next probe on. The checker's tick
//     follows the interval (a tenth of it, 10ms to 100ms).
//   - Jitter: from the next wait drawn.
//   - Timeout: for the probes started from now; those in flight keep theirs.
//   - Path, ExpectedStatus: given to the prober (CheckSetter) for the
//     probes started from now.
func (hc *HealthChecker) Reconfigure(ctx context.Context, set HealthSettings) error {
	if err := set.Validate(); err != nil {
		return err
	}
	err, askErr := actor.Ask(ctx, hc.ref, func(r chan<- error) any { return reconfigureHealth{set, r} })
	if askErr != nil {
		return askErr
	}
	return err
}

// reconfigure applies set on the actor's goroutine (see Reconfigure).
func (s *healthState) reconfigure(set HealthSettings, now time.Time) error {
	cs, canSet := s.cfg.Prober.(CheckSetter)
	if !canSet && (set.Path != "" || set.ExpectedStatus != 0) {
		return fmt.Errorf("health checker %s: its prober (%T) cannot change the path or expected status", s.cfg.Name, s.cfg.Prober)
	}
	if canSet {
		cs.SetCheck(set.Path, set.ExpectedStatus)
	}
	s.cfg.Interval, s.cfg.Timeout, s.cfg.Jitter = set.Interval, set.Timeout, set.Jitter
	latest := now.Add(time.Duration((1 + set.Jitter) * float64(set.Interval)))
	for _, t := range s.targets {
		if t.next.After(latest) {
			t.next = now.Add(time.Duration(s.cfg.Rand.Float64() * float64(set.Interval)))
		}
	}
	s.ref.SetTickEvery(healthTick(set.Interval))
	s.publish(now)
	s.cfg.Logger.Info("health checker reconfigured", "pool", s.cfg.Pool, "interval", set.Interval.String(),
		"timeout", set.Timeout.String(), "jitter", set.Jitter, "path", set.Path, "expected_status", set.ExpectedStatus)
	return nil
}
