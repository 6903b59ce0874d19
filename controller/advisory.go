package controller

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lbd/lbd/actor"
	"github.com/lbd/lbd/scheduler"
)

// Reading is one backend's latency as the advisory sees it.
type Reading struct {
	Backend string
	Latency time.Duration // its peak-EWMA; zero when it has served nothing yet
	// Eligible is false while the backend takes no traffic (drained,
	// ejected, down): its latency then says nothing new.
	Eligible bool
}

// BackendReadings reads every backend's published snapshot: the advisory
// sends no message to the backend actors.
func BackendReadings(s *scheduler.Scheduler) func() []Reading {
	return func() []Reading {
		hs := s.Picker().Backends()
		out := make([]Reading, 0, len(hs))
		for _, h := range hs {
			snap := h.Snapshot()
			out = append(out, Reading{Backend: h.URL(), Latency: snap.EWMA, Eligible: snap.Eligible})
		}
		return out
	}
}

// AdvisoryConfig configures the scaling advisory.
type AdvisoryConfig struct {
	Source   func() []Reading
	Rules    AdvisoryRules
	Every    time.Duration // reading period [1s]
	Registry *actor.Registry
	Logger   *slog.Logger
}

// Advisory is the predictive scaling advisory actor. Every Every it reads
// each backend's latency, folds it into that backend's Trend and into an
// "overall" Trend (the mean over eligible backends with traffic), and warns
// — a log line, GET /admin/advisory and the lbd_advisory_warning gauge —
// while latency stays more than the threshold (15%) above its baseline:
// the early sign that the backends need more capacity before the latency
// target or the admission limit bites. AdvisoryRules documents how the
// baseline is formed.
type Advisory struct {
	ref    *actor.Ref
	report atomic.Pointer[AdvisoryReport]
	descs  advisoryDescs
}

// OverallSeries is the name of the aggregate series in reports and metrics.
const OverallSeries = "overall"

// AdvisoryReport is the advisory's published verdict (GET /admin/advisory).
type AdvisoryReport struct {
	Time             time.Time     `json:"time"`
	ThresholdPercent float64       `json:"threshold_percent"`
	Warning          bool          `json:"warning"` // overall or any backend
	Overall          TrendReport   `json:"overall"`
	Backends         []TrendReport `json:"backends"`
	Baseline         string        `json:"baseline"` // how the baseline is formed
}

// TrendReport is one series in an AdvisoryReport.
type TrendReport struct {
	Backend      string     `json:"backend"`
	CurrentMs    float64    `json:"current_ms"`
	BaselineMs   float64    `json:"baseline_ms"`
	RisePercent  float64    `json:"rise_percent"`
	Learning     bool       `json:"learning"`
	Warning      bool       `json:"warning"`
	WarningSince *time.Time `json:"warning_since,omitempty"`
	Advice       string     `json:"advice,omitempty"`
}

// NewAdvisory starts the advisory actor.
func NewAdvisory(c AdvisoryConfig) *Advisory {
	if c.Every <= 0 {
		c.Every = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Rules = c.Rules.withDefaults()
	s := &advisory{cfg: c, a: &Advisory{descs: newAdvisoryDescs()}, trends: map[string]Trend{}}
	s.publish(time.Now())
	s.a.ref = actor.Spawn(c.Registry, s, actor.Options{
		Name: "advisory", Kind: "advisory", Mailbox: 1, TickEvery: c.Every, Logger: c.Logger,
	})
	return s.a
}

// Report returns the latest verdict. Never nil.
func (a *Advisory) Report() *AdvisoryReport { return a.report.Load() }

// Stop stops the actor.
func (a *Advisory) Stop(ctx context.Context) error { return a.ref.StopWait(ctx) }

// advisory is the actor's state; only its goroutine touches it.
type advisory struct {
	cfg     AdvisoryConfig
	a       *Advisory
	ref     *actor.Ref
	trends  map[string]Trend // by backend URL
	overall Trend
}

func (s *advisory) Bind(r *actor.Ref) { s.ref = r }

// Receive: the advisory takes no messages; it works on its tick.
func (s *advisory) Receive(any) {}

// Tick reads the backends and folds their latencies.
func (s *advisory) Tick(now time.Time) {
	readings := s.cfg.Source()
	present := make(map[string]bool, len(readings))
	var sum time.Duration
	var n int
	for _, rd := range readings {
		present[rd.Backend] = true
		if !rd.Eligible || rd.Latency <= 0 {
			continue
		}
		sum += rd.Latency
		n++
		t, ev := s.trends[rd.Backend].Observe(rd.Latency.Seconds(), now, s.cfg.Rules)
		s.trends[rd.Backend] = t
		s.logEvent(rd.Backend, t, ev)
	}
	for b := range s.trends {
		if !present[b] { // removed from lbd
			delete(s.trends, b)
		}
	}
	if n > 0 {
		var ev TrendEvent
		s.overall, ev = s.overall.Observe((sum / time.Duration(n)).Seconds(), now, s.cfg.Rules)
		s.logEvent(OverallSeries, s.overall, ev)
	}
	s.publish(now)
}

func (s *advisory) logEvent(series string, t Trend, ev TrendEvent) {
	attrs := []any{"backend", series, "current_ms", secondsToMs(t.Current), "baseline_ms", secondsToMs(t.Baseline),
		"rise_percent", pct(t.Rise())}
	switch ev {
	case Warned:
		s.cfg.Logger.Warn("scaling advisory: latency above baseline", append(attrs, "advice", advice(series))...)
	case Cleared:
		s.cfg.Logger.Info("scaling advisory: latency back near baseline", attrs...)
	case Relearned:
		s.cfg.Logger.Info("scaling advisory: raised latency accepted as the new baseline", attrs...)
	}
}

func advice(series string) string {
	if series == OverallSeries {
		return "latency is rising across backends: add backends or capacity before the latency target or admission limit is reached"
	}
	return "this backend is slowing down: check it, lower its weight, or add capacity behind it"
}

func (s *advisory) publish(now time.Time) {
	r := &AdvisoryReport{
		Time: now, ThresholdPercent: pct(s.cfg.Rules.Threshold),
		Overall:  s.trendReport(OverallSeries, s.overall, now),
		Baseline: baselineDoc(s.cfg.Rules),
		Backends: make([]TrendReport, 0, len(s.trends)),
	}
	r.Warning = r.Overall.Warning
	for b, t := range s.trends {
		tr := s.trendReport(b, t, now)
		r.Warning = r.Warning || tr.Warning
		r.Backends = append(r.Backends, tr)
	}
	slices.SortFunc(r.Backends, func(a, b TrendReport) int { return strings.Compare(a.Backend, b.Backend) })
	s.a.report.Store(r)
	if s.ref != nil {
		s.ref.SetState(fmt.Sprintf("warning=%t overall current=%.1fms baseline=%.1fms", r.Warning, r.Overall.CurrentMs, r.Overall.BaselineMs))
	}
}

func (s *advisory) trendReport(series string, t Trend, now time.Time) TrendReport {
	tr := TrendReport{
		Backend: series, CurrentMs: secondsToMs(t.Current), BaselineMs: secondsToMs(t.Baseline), RisePercent: pct(t.Rise()),
		Learning: t.At.IsZero() || t.Learning(now, s.cfg.Rules), Warning: t.Warning,
	}
	if t.Warning {
		since := t.WarningSince
		tr.WarningSince, tr.Advice = &since, advice(series)
	}
	return tr
}

func baselineDoc(r AdvisoryRules) string {
	return fmt.Sprintf("current = %s EWMA of the backend's peak-EWMA latency (overall: the mean over eligible backends); "+
		"baseline follows current for the first %s, then is a %s EWMA of current, frozen while warning; "+
		"warning while current > baseline x %.2f for %d readings in a row; after %s of warning the new level becomes the baseline",
		r.Fast, r.Learn, r.Slow, 1+r.Threshold, r.Sustain, r.Relearn)
}

func secondsToMs(s float64) float64 { return math.Round(s*1e6) / 1e3 }
func pct(f float64) float64         { return math.Round(f*1e4) / 1e2 }
