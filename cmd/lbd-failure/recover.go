package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"sync"
	"time"

	"github.com/lbd/lbd/internal/loadgen"
	"github.com/lbd/lbd/internal/synth"
)

// recoverOptions are the knobs of the recover scenario.
type recoverOptions struct {
	lbd     string
	rate    float64       // open-loop requests/s
	latency time.Duration // every backend's base latency
	slower  time.Duration // added to the third backend during the spell
	warmup  time.Duration // before the spell
	spell   time.Duration // how long the third backend is slow
	after   time.Duration // observed after the spell
	window  time.Duration // share sampling window
	share   float64       // the share that counts as "back"
}

// The backend actors' peak-EWMA settings (backendactor defaults): the decay
// time constant and the grace before an estimate without samples decays,
// and the tick that folds samples.
const (
	ewmaTau   = time.Second
	ewmaGrace = 200 * time.Millisecond
	ewmaTick  = 100 * time.Millisecond
)

// recoverResult is what one recover run measured.
type recoverResult struct {
	windows      []shareWindow // from the start of the spell
	back         time.Duration // from the spell's end to the end of the first window above the share; 0 if never
	sustained    time.Duration // to the end of the first window from which every later one is above
	slowEWMA     float64       // ms, of the slow backend just before the spell ended
	fastEWMA     float64       // ms, the mean of the other two then
	expectBack   time.Duration // grace + tau x ln(slow/fast) + a tick
	duringShare  float64       // the slow backend's share over the spell's last half
	load         *loadgen.Result
	shareAtStart float64 // its share over the warm-up
}

// shareWindow is one sampling window: requests each backend finished in it.
type shareWindow struct {
	at       time.Duration // end of the window, from the spell's start
	requests [3]uint64
}

func (w shareWindow) share(i int) float64 {
	total := w.requests[0] + w.requests[1] + w.requests[2]
	if total == 0 {
		return 0
	}
	return float64(w.requests[i]) / float64(total)
}

// recoverScenario: three backends at lbd's defaults (p2c-ewma) under an
// open-loop load; the third turns slower for a spell and then exactly as
// fast as the others. How long until it is back above a fair share?
// Before issue 10 it got nothing, for ever.
func recoverScenario(ctx context.Context, o recoverOptions, logger *log.Logger) (_ *recoverResult, err error) {
	var running []*synth.Running
	var urls []string
	defer func() {
		for _, r := range running {
			_ = r.Close()
		}
	}()
	for i := range 3 {
		r, err := synth.Start("127.0.0.1:0", synth.Knobs{Name: fmt.Sprintf("b%d", i+1), Latency: o.latency})
		if err != nil {
			return nil, err
		}
		running, urls = append(running, r), append(urls, r.URL())
	}
	cfg := baseConfig(urls)
	dir, err := tempDir()
	if err != nil {
		return nil, err
	}
	defer removeUnlessFailed(dir, &err)
	p, err := startLBD(ctx, o.lbd, dir, cfg)
	if err != nil {
		return nil, err
	}
	defer p.Stop()

	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	res := &recoverResult{}
	var wg sync.WaitGroup
	var loadErr error
	total := o.warmup + o.spell + o.after
	wg.Go(func() {
		res.load, loadErr = loadgen.Run(loadCtx, loadgen.Config{
			URL: p.DataURL + "/", Rate: o.rate, MaxOutstanding: 512, N: loadgen.MaxN, Duration: total + time.Second,
		})
	})
	counts := func() ([3]uint64, map[string]backendView, error) {
		bs, err := backends(ctx, p)
		var out [3]uint64
		for i, u := range urls {
			out[i] = bs[u].Requests
		}
		return out, bs, err
	}
	start, _, err := counts()
	if err != nil {
		return nil, err
	}
	if err := pause(ctx, o.warmup); err != nil {
		return nil, err
	}
	warm, _, err := counts()
	if err != nil {
		return nil, err
	}
	res.shareAtStart = shareWindow{requests: diff(warm, start)}.share(2)
	slow := synth.Knobs{Name: "b3", Latency: o.latency + o.slower}
	running[2].Server.SetKnobs(slow)
	logger.Printf("b3 is %v slower for %v", o.slower, o.spell)
	spellStart := time.Now()
	prev := warm
	tick := time.NewTicker(o.window)
	defer tick.Stop()
	healed := false
	for time.Since(spellStart) < o.spell+o.after {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		now, bs, err := counts()
		if err != nil {
			return nil, err
		}
		res.windows = append(res.windows, shareWindow{at: time.Since(spellStart), requests: diff(now, prev)})
		prev = now
		if !healed && time.Since(spellStart) >= o.spell {
			running[2].Server.SetKnobs(synth.Knobs{Name: "b3", Latency: o.latency})
			healed = true
			res.slowEWMA = bs[urls[2]].EWMAms
			res.fastEWMA = (bs[urls[0]].EWMAms + bs[urls[1]].EWMAms) / 2
			logger.Printf("b3 is as fast as the others again (EWMA %.2f ms against %.2f ms)", res.slowEWMA, res.fastEWMA)
		}
	}
	stopLoad()
	wg.Wait()
	if loadErr != nil && !errors.Is(loadErr, context.Canceled) {
		return nil, loadErr
	}
	res.summarise(o)
	return res, nil
}

func diff(a, b [3]uint64) [3]uint64 {
	return [3]uint64{a[0] - b[0], a[1] - b[1], a[2] - b[2]}
}

// summarise finds when the slow backend was back above the share, and what
// the decay predicts: its last slow estimate (at the latest when the spell
// ends) holds for the grace, then falls as exp(-t/tau) to the others'
// latency, after which a tick folds its first fast samples.
func (r *recoverResult) summarise(o recoverOptions) {
	var during []uint64
	var all uint64
	for _, w := range r.windows {
		if w.at > o.spell/2 && w.at <= o.spell {
			during = append(during, w.requests[2])
			all += w.requests[0] + w.requests[1] + w.requests[2]
		}
	}
	var n uint64
	for _, v := range during {
		n += v
	}
	if all > 0 {
		r.duringShare = float64(n) / float64(all)
	}
	for i, w := range r.windows {
		if w.at <= o.spell || w.share(2) <= o.share {
			continue
		}
		if r.back == 0 {
			r.back = w.at - o.spell
		}
		rest := true
		for _, later := range r.windows[i:] {
			rest = rest && later.share(2) > o.share
		}
		if rest {
			r.sustained = w.at - o.spell
			break
		}
	}
	if r.fastEWMA > 0 && r.slowEWMA > r.fastEWMA {
		r.expectBack = ewmaGrace + time.Duration(float64(ewmaTau)*math.Log(r.slowEWMA/r.fastEWMA)) + ewmaTick
	}
}

func printRecover(w io.Writer, o recoverOptions, r *recoverResult) {
	fmt.Fprintf(w, "3 backends (%v), %.0f req/s open loop; b3 %v slower for %v, then as fast; lbd defaults (p2c-ewma)\n",
		o.latency, o.rate, o.slower, o.spell)
	fmt.Fprintf(w, "b3's share: %.1f%% before the spell, %.2f%% over the spell's second half\n", 100*r.shareAtStart, 100*r.duringShare)
	back := func(d time.Duration) string {
		if d == 0 {
			return "never"
		}
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
	fmt.Fprintf(w, "back above %.0f%%: %s after the spell ended (first %v window); for good: %s; "+
		"expected from the decay: <= %.2fs (EWMA %.2f ms vs %.2f ms at the spell's end)\n",
		100*o.share, back(r.back), o.window, back(r.sustained), r.expectBack.Seconds(), r.slowEWMA, r.fastEWMA)
	if l := r.load; l != nil {
		errs := clientErrors(l)
		fmt.Fprintf(w, "load: %d requests, %d client-visible errors, statuses %v, lbd's refusals %v\n", l.Sent, errs, l.Status, l.Reject)
	}
	fmt.Fprintf(w, "\n| seconds after the spell ended | b1 | b2 | b3 |\n|---|---|---|---|\n")
	for _, win := range r.windows {
		if win.at <= o.spell-time.Second || win.at > o.spell+8*time.Second {
			continue
		}
		fmt.Fprintf(w, "| %+.2f | %.1f%% | %.1f%% | %.1f%% |\n", (win.at - o.spell).Seconds(),
			100*win.share(0), 100*win.share(1), 100*win.share(2))
	}
}
