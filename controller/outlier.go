package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbd/lbd/actor"
	"github.com/lbd/lbd/backendactor"
)

// OutlierConfig configures the outlier detector (config section "outlier").
type OutlierConfig struct {
	Rules OutlierRules
	// Interval is the success-rate window, and the step at which ejection
	// multipliers are forgiven.
	Interval time.Duration
	// Poll is how often the consecutive-failure runs are read (default
	// 100ms, at most Interval). Reading them costs a few atomic loads per
	// backend; Envoy acts on these runs at the failing request itself, and a
	// short poll keeps lbd close to that.
	Poll time.Duration
	// Backends returns the set to watch (the scheduler's picker).
	Backends func() []*backendactor.Handle
	// Name is the actor's name (default "outlier-detector"); Pool the pool
	// it watches, the "pool" label of its metric (default "default"). One
	// detector runs per pool with outlier detection.
	Name, Pool string
	Registry   *actor.Registry
	// Registerer receives lbd_outlier_ejections_total (nil: no metrics),
	// shared by the detectors of several pools as the health checkers share
	// theirs (HealthConfig.Registerer); a stopped detector deletes its
	// pool's series.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Validate reports the first setting the detector cannot run with.
func (c OutlierConfig) Validate() error {
	if err := validateOutlier(c.Rules, c.Interval); err != nil {
		return err
	}
	if c.Backends == nil {
		return errors.New("outlier detector needs a backend source")
	}
	return nil
}

// validateOutlier checks what Reconfigure may change too.
func validateOutlier(r OutlierRules, interval time.Duration) error {
	switch {
	case interval <= 0:
		return fmt.Errorf("outlier interval must be positive, got %v", interval)
	case r.BaseEjection <= 0:
		return fmt.Errorf("outlier base ejection must be positive, got %v", r.BaseEjection)
	case r.MaxEjection > 0 && r.MaxEjection < r.BaseEjection:
		return fmt.Errorf("outlier max ejection %v is below the base ejection %v", r.MaxEjection, r.BaseEjection)
	case r.MaxEjectionPercent < 0 || r.MaxEjectionPercent > 100:
		return fmt.Errorf("outlier max ejection percent must be between 0 and 100, got %d", r.MaxEjectionPercent)
	}
	return nil
}

// OutlierReport is the detector's published state: GET /admin/outliers.
type OutlierReport struct {
	Enabled            bool              `json:"enabled"`
	MaxEjectionPercent int               `json:"max_ejection_percent"`
	Ejected            []EjectedBackend  `json:"ejected"`
	UpdatedAt          time.Time         `json:"updated_at"`
	Rules              *OutlierRulesJSON `json:"rules,omitempty"`
}

// EjectedBackend is one currently ejected backend.
type EjectedBackend struct {
	URL       string    `json:"url"`
	Reason    string    `json:"reason"`
	Detail    string    `json:"detail"`
	Since     time.Time `json:"since"`
	Until     time.Time `json:"until"`
	Ejections int       `json:"ejections"` // times ejected since it was added, this one included
}

// OutlierRulesJSON shows the rules in force next to the ejections.
type OutlierRulesJSON struct {
	Consecutive5xx     int    `json:"consecutive_5xx"`
	ConsecutiveGateway int    `json:"consecutive_gateway_failure"`
	BaseEjection       string `json:"base_ejection"`
	MaxEjection        string `json:"max_ejection"`
	Interval           string `json:"interval"`
}

// DisabledOutlierReport is the report when outlier detection is off.
func DisabledOutlierReport() *OutlierReport {
	return &OutlierReport{Ejected: []EjectedBackend{}}
}

// OutlierDetector is the outlier detector actor. Every Poll it reads each
// backend's failure runs from its handle (atomics, no message), and when a
// success-rate interval closes also its request and failure counts; it hands
// them to OutlierRules.Decide and sends each resulting ejection to the
// backend's actor, which takes the backend out until the ejection's end and
// brings it back by itself, with a warm-up ramp. The detector owns the
// ejection history (multipliers) and publishes the report that
// /admin/outliers serves.
type OutlierDetector struct {
	ref    *actor.Ref
	report atomic.Pointer[OutlierReport]
}

// NewOutlierDetector starts the detector actor.
func NewOutlierDetector(c OutlierConfig) (*OutlierDetector, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Poll <= 0 {
		c.Poll = 100 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Name == "" {
		c.Name = "outlier-detector"
	}
	if c.Pool == "" {
		c.Pool = defaultPool
	}
	d := &OutlierDetector{}
	s := &outlierState{cfg: c, d: d, watched: map[string]*watched{}}
	if c.Registerer != nil {
		ej, err := sharedCounterVec(c.Registerer, prometheus.CounterOpts{
			Name: "lbd_outlier_ejections_total",
			Help: "Backends ejected by the outlier detector, by pool and backend.",
		}, "pool", "backend")
		if err != nil {
			return nil, fmt.Errorf("outlier detector metrics: %w", err)
		}
		s.ejections = ej
	}
	now := time.Now()
	s.nextWindow = now.Add(c.Interval)
	s.sync()
	s.publish(now)
	d.ref = actor.Spawn(c.Registry, s, actor.Options{
		Name: c.Name, Kind: "outlier", Mailbox: 8, TickEvery: s.poll(), Logger: c.Logger,
	})
	return d, nil
}

// Report returns the last published report. Never nil.
func (d *OutlierDetector) Report() *OutlierReport { return d.report.Load() }

// Stop stops the detector. Ejections in force run their course: the
// backend actors own them.
func (d *OutlierDetector) Stop(ctx context.Context) error { return d.ref.StopWait(ctx) }

// watched is one backend as the detector follows it.
type watched struct {
	h    *backendactor.Handle
	hist OutlierHistory
	base backendactor.Counters // at the start of the current success-rate window
}

type outlierState struct {
	cfg        OutlierConfig
	d          *OutlierDetector
	ref        *actor.Ref
	watched    map[string]*watched // by URL
	order      []string            // URLs in the picker's order, for stable decisions
	nextWindow time.Time
	ejections  *prometheus.CounterVec
}

func (s *outlierState) Bind(r *actor.Ref) { s.ref = r }

// Receive: the detector works on its tick; its one message is new settings.
func (s *outlierState) Receive(msg any) {
	switch m := msg.(type) {
	case reconfigureOutlier:
		s.reconfigure(m.rules, m.interval, time.Now())
		m.reply <- nil
	default:
		s.cfg.Logger.Warn("outlier detector: unknown message", "type", fmt.Sprintf("%T", msg))
	}
}

// poll is the tick period: Poll, but at most the interval.
func (s *outlierState) poll() time.Duration { return min(s.cfg.Poll, s.cfg.Interval) }

// Stopped deletes the pool's series: a pool without a detector has none.
func (s *outlierState) Stopped() {
	if s.ejections != nil {
		s.ejections.DeletePartialMatch(prometheus.Labels{"pool": s.cfg.Pool})
	}
}

// Tick reads the backends, decides and ejects.
func (s *outlierState) Tick(now time.Time) {
	s.sync()
	obs := Observation{SuccessRate: !now.Before(s.nextWindow)}
	hist := make(map[string]OutlierHistory, len(s.watched))
	counters := make(map[string]backendactor.Counters, len(s.watched))
	for _, u := range s.order {
		w := s.watched[u]
		c := w.h.Counters()
		counters[u] = c
		run5xx, runGateway := w.h.TakeRuns()
		state := w.h.Snapshot().State
		st := OutlierStats{URL: u, Consecutive5xx: run5xx, ConsecutiveGateway: runGateway,
			Draining: state == backendactor.StateDraining, StillEjected: state == backendactor.StateEjected}
		if obs.SuccessRate {
			st.Requests, st.Failures = c.Requests-w.base.Requests, c.Failures-w.base.Failures
		}
		obs.Backends = append(obs.Backends, st)
		hist[u] = w.hist
	}
	for _, ej := range s.cfg.Rules.Decide(obs, hist, now) {
		s.eject(s.watched[ej.URL], ej)
	}
	if obs.SuccessRate {
		for u, w := range s.watched {
			w.base = counters[u]
			w.hist = w.hist.Forgive(now, s.cfg.Interval)
		}
		s.nextWindow = now.Add(s.cfg.Interval)
	}
	s.publish(now)
}

// eject tells the backend's actor and records the ejection once it took it.
func (s *outlierState) eject(w *watched, ej Ejection) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := w.h.Eject(ctx, ej.Until, ej.Reason); err != nil {
		if !errors.Is(err, actor.ErrStopped) {
			s.cfg.Logger.Warn("outlier detector: backend did not take the ejection", "backend", ej.URL, "err", err)
		}
		return // its runs are intact: the next poll tries again
	}
	w.hist = w.hist.Record(ej)
	if s.ejections != nil {
		s.ejections.WithLabelValues(s.cfg.Pool, ej.URL).Inc()
	}
	s.cfg.Logger.Warn("outlier ejected", "pool", s.cfg.Pool, "backend", ej.URL, "reason", ej.Reason, "detail", ej.Detail,
		"until", ej.Until.Format(time.RFC3339Nano), "for", ej.Until.Sub(ej.Since).String(), "ejections", ej.Count)
}

// sync follows the backend set: a new handle (even under a URL seen
// before) starts with a clean history.
func (s *outlierState) sync() {
	hs := s.cfg.Backends()
	s.order = s.order[:0]
	seen := make(map[string]bool, len(hs))
	for _, h := range hs {
		u := h.URL()
		seen[u] = true
		s.order = append(s.order, u)
		if w, ok := s.watched[u]; ok && w.h == h {
			continue
		}
		s.watched[u] = &watched{h: h, base: h.Counters()}
		if s.ejections != nil {
			s.ejections.WithLabelValues(s.cfg.Pool, u)
		}
	}
	for u := range s.watched {
		if !seen[u] {
			delete(s.watched, u)
			if s.ejections != nil {
				s.ejections.DeleteLabelValues(s.cfg.Pool, u)
			}
		}
	}
}

func (s *outlierState) publish(now time.Time) {
	r := s.cfg.Rules
	rep := &OutlierReport{
		Enabled: true, MaxEjectionPercent: r.MaxEjectionPercent, Ejected: []EjectedBackend{}, UpdatedAt: now,
		Rules: &OutlierRulesJSON{Consecutive5xx: r.Consecutive5xx, ConsecutiveGateway: r.ConsecutiveGateway,
			BaseEjection: r.BaseEjection.String(), MaxEjection: r.MaxEjection.String(), Interval: s.cfg.Interval.String()},
	}
	for _, u := range s.order {
		h := s.watched[u].hist
		if h.Ejected(now) {
			rep.Ejected = append(rep.Ejected, EjectedBackend{URL: u, Reason: h.Reason, Detail: h.Detail,
				Since: h.Since, Until: h.Until, Ejections: h.Ejections})
		}
	}
	s.d.report.Store(rep)
	if s.ref != nil {
		s.ref.SetState(fmt.Sprintf("backends=%d ejected=%d", len(s.order), len(rep.Ejected)))
	}
}
