package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"sync"
	"time"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/internal/loadgen"
	"github.com/lbd/lbd/internal/synth"
)

// detectOptions are the knobs of the detect scenario.
type detectOptions struct {
	lbd        string
	down       time.Duration // how long a backend stays dead before it comes back
	rate       float64       // open-loop load of the "under load" half
	fullWeight bool          // also wait for the warm-up ramp to end
}

// expectation is a figure computed from lbd's defaults, next to which the
// scenario prints its measurement.
type expectation struct {
	mean, lo, hi time.Duration
}

func (e expectation) String() string {
	return fmt.Sprintf("mean %.1fs (%.1f-%.1fs)", e.mean.Seconds(), e.lo.Seconds(), e.hi.Seconds())
}

// probeRuns is how long it takes active checks to see n probes in a row
// after a change at a random moment: the wait for the next probe (the
// residual of a uniform interval I x (1 ± j), whose mean is I/2 x (1 +
// j²/3)) plus n-1 whole intervals.
func probeRuns(h config.Health, n int) expectation {
	i, j := h.Interval.D(), h.Jitter
	residual := time.Duration(float64(i) / 2 * (1 + j*j/3))
	short, long := time.Duration(float64(i)*(1-j)), time.Duration(float64(i)*(1+j))
	return expectation{
		mean: residual + time.Duration(n-1)*i,
		lo:   time.Duration(n-1) * short,
		hi:   time.Duration(n) * long,
	}
}

// detectResult is what one detect run measured.
type detectResult struct {
	cfg                                  *config.Config
	idleDown, idleUp, idleFull           time.Duration
	loadDown, loadUp, loadFull           time.Duration
	loadDownState                        string
	load                                 *loadgen.Result
	expectDown, expectUp, expectLoadBack expectation
}

// detect measures, at lbd's default settings, how long it takes to take a
// dead backend out and to bring it back once it recovers: first with no
// traffic (only active health checks can tell), then under load (the
// breaker and the outlier detector see the failures first).
func detect(ctx context.Context, o detectOptions, logger *log.Logger) (_ *detectResult, err error) {
	names := []string{"b0", "b1", "b2", "b3"}
	running := make([]*synth.Running, len(names))
	addrs := make([]string, len(names))
	var urls []string
	defer func() {
		for _, r := range running {
			if r != nil {
				_ = r.Close()
			}
		}
	}()
	for i, n := range names {
		r, err := synth.Start("127.0.0.1:0", synth.Knobs{Name: n, Latency: time.Millisecond})
		if err != nil {
			return nil, err
		}
		running[i], addrs[i] = r, r.Addr()
		urls = append(urls, r.URL())
	}
	cfg := baseConfig(urls)
	res := &detectResult{cfg: cfg}
	res.expectDown = probeRuns(cfg.Health, cfg.Health.Fall)
	res.expectUp = probeRuns(cfg.Health, cfg.Health.Rise)

	dir, err := tempDir()
	if err != nil {
		return nil, err
	}
	keep := false // lbd's log is kept when clients saw errors
	defer func() {
		if !keep {
			removeUnlessFailed(dir, &err)
		}
	}()
	p, err := startLBD(ctx, o.lbd, dir, cfg)
	if err != nil {
		return nil, err
	}
	defer p.Stop()
	state := func(u string) (backendView, error) {
		bs, err := backends(ctx, p)
		return bs[u], err
	}
	kill := func(i int) time.Time {
		_ = running[i].Close()
		running[i] = nil
		return time.Now()
	}
	revive := func(i int) (time.Time, error) {
		r, err := synth.Start(addrs[i], synth.Knobs{Name: names[i], Latency: time.Millisecond})
		if err != nil {
			return time.Time{}, fmt.Errorf("restart %s on %s: %w", names[i], addrs[i], err)
		}
		running[i] = r
		return time.Now(), nil
	}
	limit := 2*time.Minute + o.down

	// No traffic: only the health checker can tell.
	t0 := kill(1)
	logger.Printf("idle: %s killed", names[1])
	if res.idleDown, err = waitFor(ctx, t0, limit, func() (bool, error) {
		b, err := state(urls[1])
		return b.State == "unhealthy", err
	}); err != nil {
		return nil, fmt.Errorf("idle: waiting for %s to be marked down: %w", names[1], err)
	}
	logger.Printf("idle: %s down after %v; back in %v", names[1], res.idleDown, o.down)
	if err := pause(ctx, o.down); err != nil {
		return nil, err
	}
	t1, err := revive(1)
	if err != nil {
		return nil, err
	}
	if res.idleUp, err = waitFor(ctx, t1, limit, func() (bool, error) {
		b, err := state(urls[1])
		return b.inRotation(), err
	}); err != nil {
		return nil, fmt.Errorf("idle: waiting for %s to come back: %w", names[1], err)
	}
	logger.Printf("idle: %s back in rotation after %v", names[1], res.idleUp)
	if o.fullWeight {
		if res.idleFull, err = waitFor(ctx, t1, limit+cfg.Warmup.Duration.D(), func() (bool, error) {
			b, err := state(urls[1])
			return b.State == "healthy", err
		}); err != nil {
			return nil, err
		}
	}

	// Under load: the failed requests give it away first.
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var wg sync.WaitGroup
	var loadErr error
	wg.Go(func() {
		res.load, loadErr = loadgen.Run(loadCtx, loadgen.Config{
			URL: p.DataURL + "/", Rate: o.rate, MaxOutstanding: 256, N: loadgen.MaxN, Duration: time.Hour,
		})
	})
	if err := pause(ctx, 3*time.Second); err != nil {
		return nil, err
	}
	t2 := kill(2)
	logger.Printf("load: %s killed", names[2])
	if res.loadDown, err = waitFor(ctx, t2, limit, func() (bool, error) {
		b, err := state(urls[2])
		res.loadDownState = b.State + ", breaker " + b.Breaker
		return !b.inRotation(), err
	}); err != nil {
		return nil, fmt.Errorf("load: waiting for %s to be taken out: %w", names[2], err)
	}
	logger.Printf("load: %s out after %v (%s); back in %v", names[2], res.loadDown, res.loadDownState, o.down)
	if err := pause(ctx, o.down); err != nil {
		return nil, err
	}
	t3, err := revive(2)
	if err != nil {
		return nil, err
	}
	// Back when both the ejection that the failures earned (it started
	// when the backend was taken out, o.down before the restart) and the
	// rise of the health checks are over; the backend actor ends an
	// ejection on its next tick (100ms).
	ej := cfg.Outlier.BaseEjection.D()
	left := ej - o.down
	res.expectLoadBack = expectation{
		mean: max(left+50*time.Millisecond, res.expectUp.mean),
		lo:   max(left, res.expectUp.lo),
		hi:   max(left+100*time.Millisecond, res.expectUp.hi),
	}
	if res.loadUp, err = waitFor(ctx, t3, limit+ej, func() (bool, error) {
		b, err := state(urls[2])
		return b.inRotation(), err
	}); err != nil {
		return nil, fmt.Errorf("load: waiting for %s to come back: %w", names[2], err)
	}
	logger.Printf("load: %s back in rotation after %v", names[2], res.loadUp)
	if o.fullWeight {
		if res.loadFull, err = waitFor(ctx, t3, limit+ej+cfg.Warmup.Duration.D(), func() (bool, error) {
			b, err := state(urls[2])
			return b.State == "healthy", err
		}); err != nil {
			return nil, err
		}
	}
	stopLoad()
	wg.Wait()
	if loadErr != nil && !errors.Is(loadErr, context.Canceled) {
		return nil, loadErr
	}
	if clientErrors(res.load) > 0 {
		keep = true
		logger.Printf("clients saw errors: lbd's log is kept in %s", p.LogPath)
	}
	return res, nil
}

// pause waits d or until ctx ends.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func printDetect(w io.Writer, o detectOptions, r *detectResult) {
	h, b, ol, wu := r.cfg.Health, r.cfg.Breaker, r.cfg.Outlier, r.cfg.Warmup
	fmt.Fprintf(w, "defaults: health interval %v ± %.0f%%, fall %d, rise %d; breaker %d failures, open %v; "+
		"outlier %d consecutive, base ejection %v; warm-up %v from %d%%\n",
		h.Interval.D(), h.Jitter*100, h.Fall, h.Rise, b.FailureThreshold, b.OpenFor.D(),
		ol.Consecutive5xx, ol.BaseEjection.D(), wu.Duration.D(), wu.MinWeightPercent)
	fmt.Fprintf(w, "\n| event | measured | expected from the config |\n|---|---|---|\n")
	row := func(event string, got time.Duration, want string) {
		if got == 0 {
			return
		}
		fmt.Fprintf(w, "| %s | %.2fs | %s |\n", event, got.Seconds(), want)
	}
	row("idle: dead -> marked down (health, fall)", r.idleDown, r.expectDown.String())
	row(fmt.Sprintf("idle: restarted after %v -> in rotation (rise)", o.down), r.idleUp, r.expectUp.String())
	row("idle: restarted -> full weight", r.idleFull, fmt.Sprintf("rise + warm-up %v", wu.Duration.D()))
	row(fmt.Sprintf("load %.0f/s: dead -> out of rotation (%s)", o.rate, r.loadDownState), r.loadDown,
		fmt.Sprintf("%d failed tries, then the next tick", b.FailureThreshold))
	row(fmt.Sprintf("load: restarted after %v -> in rotation", o.down), r.loadUp,
		"end of the ejection (base "+ol.BaseEjection.D().String()+") or rise: "+r.expectLoadBack.String())
	row("load: restarted -> full weight", r.loadFull, fmt.Sprintf("+ warm-up %v", wu.Duration.D()))
	if l := r.load; l != nil {
		errs := clientErrors(l)
		fmt.Fprintf(w, "\nload: %d requests, %d client-visible errors (%.3f%%), statuses %v, lbd's refusals %v\n",
			l.Sent, errs, 100*float64(errs)/float64(max(l.Sent, 1)), l.Status, l.Reject)
	}
}
