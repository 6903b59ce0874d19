package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"slices"
	"strings"
	"time"

	"github.com/lbd/lbd/cmd/internal/lbdproc"
	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/internal/loadgen"
	"github.com/lbd/lbd/internal/synth"
)

// flakyOptions are the knobs of the flaky scenario.
type flakyOptions struct {
	lbd         string
	modes       []string
	errorRate   float64
	concurrency int
	duration    time.Duration
	repeat      int
	// aimd keeps the adaptive concurrency limit on. It is off by default:
	// it reads a 5xx share that rises as overload and cuts the limit, and
	// the overload 503s it then sends would be counted here as errors of
	// failure handling.
	aimd bool
}

// flakyMode is one configuration compared, over lbd's defaults.
type flakyMode struct {
	name, what string
	apply      func(*config.Config)
}

// flakyModes are the configurations compared.
var flakyModes = []flakyMode{
	{"none", "no breaker, no outlier detection, no retries", func(c *config.Config) {
		c.Breaker.FailureThreshold, c.Outlier.Disabled, c.Retries.Max = 1_000_000, true, 0
	}},
	{"breaker", "breaker only (outlier detection off, no retries)", func(c *config.Config) {
		c.Outlier.Disabled, c.Retries.Max = true, 0
	}},
	{"outlier", "breaker and outlier detection, no retries", func(c *config.Config) { c.Retries.Max = 0 }},
	{"retries", "breaker and retries, outlier detection off", func(c *config.Config) { c.Outlier.Disabled = true }},
	{"all", "breaker, outlier detection and retries: the defaults", func(*config.Config) {}},
}

func flakyModeNames() []string {
	var out []string
	for _, m := range flakyModes {
		out = append(out, m.name)
	}
	return out
}

// flakyRun is what one run of one mode measured.
type flakyRun struct {
	mode          string
	res           *loadgen.Result
	clientErrors  int64
	flakyAnswered int64 // responses that came from the flaky backend
	flakyTries    uint64
	flakyFailures uint64
	trips         int
	ejections     int
	retries       float64
}

// flaky runs each mode against four backends, one of which answers 500 to
// errorRate of its requests, under a closed-loop load.
func flaky(ctx context.Context, o flakyOptions, logger *log.Logger) ([]flakyRun, error) {
	knobs := []synth.Knobs{
		{Name: "good1", Latency: 2 * time.Millisecond}, {Name: "good2", Latency: 2 * time.Millisecond},
		{Name: "good3", Latency: 2 * time.Millisecond}, {Name: "flaky", Latency: 2 * time.Millisecond, ErrorRate: o.errorRate},
	}
	var out []flakyRun
	for _, name := range o.modes {
		i := slices.IndexFunc(flakyModes, func(m flakyMode) bool { return m.name == name })
		for rep := range o.repeat {
			// Fresh backends per run, seeded by the run's number: the n-th run
			// of every mode meets the same sequence of errors, and the runs of
			// one mode meet different ones (when a first run of five failures
			// comes is luck; a median over runs should not hang on one draw).
			var running []*synth.Running
			var urls []string
			for k, kn := range knobs {
				r, err := synth.Start("127.0.0.1:0", kn, synth.WithSeed(uint64(1000*rep+k+1)))
				if err != nil {
					return out, err
				}
				running = append(running, r)
				urls = append(urls, r.URL())
			}
			cfg := baseConfig(urls)
			cfg.AIMD.Enabled = o.aimd
			flakyModes[i].apply(cfg)
			run, err := flakyOnce(ctx, o, cfg, urls[3])
			for _, r := range running {
				_ = r.Close()
			}
			if err != nil {
				return out, fmt.Errorf("mode %s: %w", name, err)
			}
			run.mode = name
			logger.Printf("%s run %d: %d requests, %d client-visible errors; statuses %v, lbd refusals %v, transport errors %v",
				name, rep+1, run.res.Sent, run.clientErrors, run.res.Status, run.res.Reject, run.res.ErrorKinds)
			out = append(out, run)
		}
	}
	return out, nil
}

func flakyOnce(ctx context.Context, o flakyOptions, cfg *config.Config, flakyURL string) (_ flakyRun, err error) {
	dir, err := tempDir()
	if err != nil {
		return flakyRun{}, err
	}
	defer removeUnlessFailed(dir, &err)
	p, err := startLBD(ctx, o.lbd, dir, cfg)
	if err != nil {
		return flakyRun{}, err
	}
	defer p.Stop()
	res, err := loadgen.Run(ctx, loadgen.Config{
		URL: p.DataURL + "/", Concurrency: o.concurrency, N: loadgen.MaxN, Duration: o.duration,
	})
	if err != nil {
		return flakyRun{}, err
	}
	run := flakyRun{res: res, clientErrors: clientErrors(res), flakyAnswered: res.Backend["flaky"]}
	bs, err := backends(ctx, p)
	if err != nil {
		return run, err
	}
	fb := bs[flakyURL]
	run.flakyTries, run.flakyFailures, run.trips = fb.Requests, fb.Failures, fb.BreakerTrip
	ej, err := p.Metric(ctx, "lbd_outlier_ejections_total")
	if err != nil && !errors.Is(err, lbdproc.ErrNoMetric) { // absent with outlier detection off
		return run, err
	}
	run.ejections = int(ej)
	run.retries, err = p.Metric(ctx, "lbd_retries_total")
	return run, err
}

// clientErrors counts what a client would call a failure: any answer but a
// 2xx, and any transport error other than the load generator's own cancel.
func clientErrors(r *loadgen.Result) int64 {
	n := r.Errors - r.ErrorKinds["canceled"]
	for code, c := range r.Status {
		if code < 200 || code > 299 {
			n += c
		}
	}
	return n
}

func printFlaky(w io.Writer, o flakyOptions, runs []flakyRun) {
	fmt.Fprintf(w, "4 backends (2ms), one answering 500 to %.0f%% of its requests; %d clients, closed loop, %v per run; aimd %v\n\n",
		o.errorRate*100, o.concurrency, o.duration, o.aimd)
	fmt.Fprintln(w, "| mode | what | requests | client-visible errors | error rate | flaky backend: tries / failures | answered by it | retries | breaker trips | ejections |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range runs {
		what := ""
		for _, m := range flakyModes {
			if m.name == r.mode {
				what = m.what
			}
		}
		fmt.Fprintf(w, "| %s | %s | %d | %d | %s | %d / %d | %.2f%% | %.0f | %d | %d |\n",
			r.mode, what, r.res.Sent, r.clientErrors, percent(r.clientErrors, r.res.Sent),
			r.flakyTries, r.flakyFailures, 100*float64(r.flakyAnswered)/float64(max(r.res.Completed, 1)),
			r.retries, r.trips, r.ejections)
	}
}

// percent formats n/d with enough digits to tell 0.01% from 0.
func percent(n, d int64) string {
	if d == 0 {
		return "-"
	}
	p := 100 * float64(n) / float64(d)
	s := fmt.Sprintf("%.3f%%", p)
	if n > 0 && strings.HasPrefix(s, "0.000") {
		s = fmt.Sprintf("%.5f%%", p)
	}
	return s
}
