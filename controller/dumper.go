package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbd/lbd/actor"
)

// DumperConfig configures the metrics dumper. Zero durations and counts
// take the defaults in brackets.
type DumperConfig struct {
	// Gatherer is the registry lbd's /metrics serves.
	Gatherer prometheus.Gatherer
	// Dir receives the dump files (metrics_dump.dir). Empty writes none: the
	// dumper then only keeps the rates window for /admin/metrics/json.
	Dir string
	// Interval is the time between dump lines [10s].
	Interval time.Duration
	// Keep is how many dump files remain after rotation [24].
	Keep int
	// FileSpan is the time one file covers before the next starts [1h]: a
	// file holds FileSpan/Interval lines (at least one). With the defaults,
	// 24 files of an hour each keep a day of history.
	FileSpan time.Duration
	// SampleEvery is how often the registry is read for the rates window
	// [1s, at most Interval]; Window is the span rates are computed over [10s].
	SampleEvery, Window time.Duration
	Registry            *actor.Registry
	Logger              *slog.Logger
}

// Dumper is the metrics dumper actor. Every SampleEvery it reads lbd's
// Prometheus registry into a Sample and publishes it with the rates over the
// last Window (the figures of GET /admin/metrics/json); with a Dir it also
// appends, every Interval, one JSON line to a rotated lb-metrics-*.log file:
// the Sample (requests, 5xx, retries, rejections by reason, admission limit
// and in-flight, and per backend its state, EWMA, in-flight, requests and
// ejections) and the rates since the previous line, for offline analysis of
// how lbd adapted. A last line is written when the dumper stops.
type Dumper struct {
	ref  *actor.Ref
	view atomic.Pointer[DumpView]
}

// DumpView is what the dumper last published.
type DumpView struct {
	Sample Sample
	Rates  Rates // over the window
}

// dumpLine is one line of a dump file.
type dumpLine struct {
	Sample
	Rates Rates `json:"rates"` // since the previous line
}

// NewDumper starts the dumper. It fails when Dir cannot be created.
func NewDumper(c DumperConfig) (*Dumper, error) {
	if c.Interval <= 0 {
		c.Interval = 10 * time.Second
	}
	if c.Keep <= 0 {
		c.Keep = 24
	}
	if c.FileSpan <= 0 {
		c.FileSpan = time.Hour
	}
	if c.SampleEvery <= 0 {
		c.SampleEvery = time.Second
	}
	sampleEvery := c.SampleEvery
	c.SampleEvery = min(c.SampleEvery, c.Interval)
	if c.Window <= 0 {
		c.Window = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	s := &dumper{cfg: c, d: &Dumper{}, sampleEvery: sampleEvery}
	if c.Dir != "" {
		var err error
		if s.rot, err = newRotator(c.Dir, c.Keep, s.perFile()); err != nil {
			return nil, err
		}
	}
	first := s.sample(time.Now())
	s.window, s.last = []Sample{first}, first
	s.d.view.Store(&DumpView{Sample: first, Rates: RatesBetween(first, first)})
	s.d.ref = actor.Spawn(c.Registry, s, actor.Options{
		Name: "metrics-dumper", Kind: "dumper", Mailbox: 4, TickEvery: c.SampleEvery, Logger: c.Logger,
	})
	return s.d, nil
}

// View returns the latest sample and window rates. Never nil.
func (d *Dumper) View() *DumpView { return d.view.Load() }

// Stop writes a last dump line, closes the file and stops the actor.
func (d *Dumper) Stop(ctx context.Context) error { return d.ref.StopWait(ctx) }

// dumper is the actor's state; only its goroutine touches it.
type dumper struct {
	cfg     DumperConfig
	d       *Dumper
	ref     *actor.Ref
	rot     *rotator // nil without a Dir
	window  []Sample // oldest first; window[0] is the newest at least Window old
	last    Sample   // the sample of the last dump line
	failing bool     // the last write failed (log once per failure run)
	// sampleEvery is the sampling period asked for; cfg.SampleEvery is it
	// capped at the interval.
	sampleEvery time.Duration
}

// perFile is how many lines a file holds: FileSpan / Interval, at least one.
func (s *dumper) perFile() int { return int(max(s.cfg.FileSpan/s.cfg.Interval, 1)) }

func (s *dumper) Bind(r *actor.Ref) { s.ref = r }

// Receive: the dumper works on its tick; its one message is new settings.
func (s *dumper) Receive(msg any) {
	switch m := msg.(type) {
	case reconfigureDumper:
		m.reply <- s.reconfigure(m.dir, m.interval, m.keep, time.Now())
	default:
		s.cfg.Logger.Warn("metrics dumper: unknown message", "type", fmt.Sprintf("%T", msg))
	}
}

func (s *dumper) sample(now time.Time) Sample {
	mfs, err := s.cfg.Gatherer.Gather()
	if err != nil { // a collector failed; the rest is still worth keeping
		s.cfg.Logger.Debug("metrics dumper: gather", "err", err)
	}
	return Reduce(mfs, now.UTC()) // dump lines carry UTC times, as their file names do
}

// Tick samples the registry, slides the window and, when an interval has
// passed, writes a dump line.
func (s *dumper) Tick(now time.Time) {
	cur := s.sample(now)
	s.window = append(s.window, cur)
	cut := 0
	for cut+1 < len(s.window) && !s.window[cut+1].Time.After(now.Add(-s.cfg.Window)) {
		cut++
	}
	s.window = append(s.window[:0], s.window[cut:]...)
	rates := RatesBetween(s.window[0], cur)
	s.d.view.Store(&DumpView{Sample: cur, Rates: rates})
	state := fmt.Sprintf("requests/s=%.1f", rates.Requests)
	if s.rot != nil {
		if now.Sub(s.last.Time) >= s.cfg.Interval-s.cfg.SampleEvery/2 { // a tick may come a little early
			s.dump(cur)
		}
		if s.rot.f != nil {
			state += " file=" + filepath.Base(s.rot.f.Name())
		}
	}
	s.ref.SetState(state)
}

func (s *dumper) dump(cur Sample) {
	line, err := json.Marshal(dumpLine{Sample: cur, Rates: RatesBetween(s.last, cur)})
	if err == nil {
		err = s.rot.write(append(line, '\n'), cur.Time)
	}
	s.last = cur
	switch {
	case err != nil && !s.failing:
		s.cfg.Logger.Warn("metrics dump failed; retrying every interval", "dir", s.cfg.Dir, "err", err)
	case err == nil && s.failing:
		s.cfg.Logger.Info("metrics dump writing again", "dir", s.cfg.Dir)
	}
	s.failing = err != nil
}

// Stopped writes a last line, so a short run leaves its figures behind.
func (s *dumper) Stopped() { s.closeDir(time.Now()) }

// closeDir writes a last line into the current dir's file and closes it.
func (s *dumper) closeDir(now time.Time) {
	if s.rot == nil {
		return
	}
	if cur := s.sample(now); cur.Time.After(s.last.Time) {
		s.dump(cur)
	}
	if err := s.rot.close(); err != nil {
		s.cfg.Logger.Warn("metrics dump: close", "err", err)
	}
	s.rot = nil
}
