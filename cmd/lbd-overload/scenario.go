package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"math"
	"os"
	"sync"
	"time"

	"github.com/lbd/lbd/cmd/internal/lbdproc"
	"github.com/lbd/lbd/internal/loadgen"
)

// row is one measured run of one mode.
type row struct {
	mode              string
	run               int
	offered           float64 // arrivals per second
	sent, ok, dropped int64
	rejected, errors  int64
	other             int64 // completed with a status that is neither 2xx nor an lbd rejection
	goodput           float64
	p50, p99          time.Duration // of admitted (2xx) requests, from their due time
	limits            []float64     // lbd_admission_limit, sampled during the measured phase
	err               error
}

// result is the scenario's output: the capacity it measured and the rows.
type result struct {
	nominal, measured float64
	rows              []row
}

func scenario(ctx context.Context, o options, logger *log.Logger) (result, error) {
	res := result{nominal: o.capacity()}
	var urls []string
	for i := range o.backends {
		b, err := startBackend(fmt.Sprintf("b%d", i), o.workers, o.service, logger)
		if err != nil {
			return res, err
		}
		defer b.close()
		urls = append(urls, b.url)
	}
	res.measured = measureCapacity(ctx, o, urls)
	logger.Printf("capacity: nominal %.0f/s, measured %.0f/s (direct, closed loop)", res.nominal, res.measured)
	for _, mode := range o.modes {
		for i := range o.repeat {
			r := runMode(ctx, o, mode, urls, logger)
			r.run = i + 1
			res.rows = append(res.rows, r)
			if r.err != nil {
				return res, fmt.Errorf("mode %s: %w", mode, r.err)
			}
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
		}
	}
	return res, nil
}

// measureCapacity drives every backend directly, closed loop with twice its
// workers, for 3 seconds, and returns the sum of their goodputs.
func measureCapacity(ctx context.Context, o options, urls []string) float64 {
	var mu sync.Mutex
	var total float64
	var wg sync.WaitGroup
	for _, u := range urls {
		wg.Go(func() {
			r, err := loadgen.Run(ctx, loadgen.Config{
				URL: u + "/", Concurrency: 2 * o.workers, N: loadgen.MaxN, Duration: 3 * time.Second,
			})
			if err == nil {
				mu.Lock()
				total += r.Goodput
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return total
}

// runMode starts lbd in the mode, loads it for warmup + duration and
// measures the second part.
func runMode(ctx context.Context, o options, mode string, urls []string, logger *log.Logger) row {
	r := row{mode: mode, offered: o.load * o.capacity()}
	cfg, err := lbdConfig(mode, urls, o.target, o.maxInflight, o.slowStart)
	if err != nil {
		r.err = err
		return r
	}
	dir, err := os.MkdirTemp("", "lbd-overload-")
	if err != nil {
		r.err = err
		return r
	}
	p, err := lbdproc.Start(ctx, o.lbd, dir, cfg)
	if err != nil {
		r.err = err
		return r
	}
	defer os.RemoveAll(dir)
	defer p.Stop()

	load := func(d time.Duration) loadgen.Config {
		return loadgen.Config{
			URL: p.DataURL + "/", Rate: r.offered, N: int(math.Ceil(r.offered*d.Seconds())) + 1, Duration: d,
			MaxOutstanding: 4000, Timeout: o.timeout,
		}
	}
	var warm sync.WaitGroup
	if o.warmup > 0 {
		warm.Go(func() { _, _ = loadgen.Run(ctx, load(o.warmup)) })
		select { // the measured run takes over the arrivals when the warm-up stops sending
		case <-time.After(o.warmup):
		case <-ctx.Done():
		}
	}
	sampled := make(chan []float64, 1)
	stopSampling := make(chan struct{})
	go func() { sampled <- sampleLimit(ctx, p, stopSampling) }()

	logger.Printf("%s: %.0f/s for %v after %v of warm-up", mode, r.offered, o.duration, o.warmup)
	res, err := loadgen.Run(ctx, load(o.duration))
	close(stopSampling)
	r.limits = <-sampled
	warm.Wait()
	if err != nil {
		r.err = err
		return r
	}
	r.sent, r.ok, r.dropped, r.errors = res.Sent, res.Count2xx(), res.Dropped, res.Errors
	for _, n := range res.Reject {
		r.rejected += n
	}
	r.other = res.Completed - r.ok - r.rejected
	// Goodput over the dispatch window: every admitted request eventually
	// completes, so this is the steady-state rate, not diluted by the tail
	// of requests still queued when arrivals stopped.
	r.goodput = float64(r.ok) / o.duration.Seconds()
	r.p50, r.p99 = res.Latency2xx.P50, res.Latency2xx.P99
	return r
}

// sampleLimit reads lbd_admission_limit every 250ms until stop closes.
func sampleLimit(ctx context.Context, p *lbdproc.Process, stop <-chan struct{}) []float64 {
	var out []float64
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return out
		case <-ctx.Done():
			return out
		case <-t.C:
			if v, err := p.Metric(ctx, "lbd_admission_limit"); err == nil {
				out = append(out, v)
			}
		}
	}
}

func printTable(w io.Writer, o options, res result) {
	fmt.Fprintf(w, "backends %d x %d workers x %v service: capacity %.0f/s nominal, %.0f/s measured; offered %.1fx = %.0f/s open loop; target %v; slow start %v; warm-up %v, measured %v\n\n",
		o.backends, o.workers, o.service, res.nominal, res.measured, o.load, o.load*res.nominal, o.target, o.slowStart, o.warmup, o.duration)
	fmt.Fprintln(w, "| mode | run | goodput/s | % of nominal capacity | p50 admitted | p99 admitted | rejected | other | errors | limit min / mean / max |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	capacity := res.nominal // the stricter yardstick: the direct measurement carries client overhead
	for _, r := range res.rows {
		if r.sent == 0 {
			continue
		}
		lo, mean, hi := summary(r.limits)
		fmt.Fprintf(w, "| %s | %d | %.0f | %.0f%% | %v | %v | %.1f%% | %d | %d | %.0f / %.0f / %.0f |\n",
			r.mode, r.run, r.goodput, 100*r.goodput/capacity, r.p50.Round(time.Millisecond), r.p99.Round(time.Millisecond),
			100*float64(r.rejected)/float64(r.sent), r.other, r.errors+r.dropped, lo, mean, hi)
	}
}

func summary(xs []float64) (lo, mean, hi float64) {
	if len(xs) == 0 {
		return 0, 0, 0
	}
	lo, hi = xs[0], xs[0]
	for _, x := range xs {
		lo, hi, mean = min(lo, x), max(hi, x), mean+x
	}
	return lo, mean / float64(len(xs)), hi
}
