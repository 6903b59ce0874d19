package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lbd/lbd/cmd/internal/lbdproc"
	"github.com/lbd/lbd/internal/loadgen"
	"github.com/lbd/lbd/internal/synth"
)

// row is one attack's measurement.
type row struct {
	name, about     string
	conns           int   // attacking connections asked for
	open            int64 // open when the normal load started
	dialed, ended   int64
	answers         map[string]int64
	sent, ok        int64
	failed          string // what the normal requests that failed got
	p50, p99        time.Duration
	rssPeak         float64 // bytes; 0 when unknown
	failures        float64 // backend failures lbd counted during the attack
	refused, conns0 float64 // connections refused at accept during it; open connections before it
	err             error
}

func (r row) success() float64 {
	if r.sent == 0 {
		return 0
	}
	return 100 * float64(r.ok) / float64(r.sent)
}

// target is the lbd under attack.
type target struct {
	data, admin string
	client      *http.Client
}

func scenario(ctx context.Context, o options, logger *log.Logger) ([]row, error) {
	t, stop, err := setup(ctx, o, logger)
	if err != nil {
		return nil, err
	}
	defer stop()
	names := o.attacks
	if !slices.Contains(names, "none") {
		names = append([]string{"none"}, names...) // the baseline first
	}
	var rows []row
	for i, name := range names {
		if i > 0 {
			sleep(ctx, o.rest) // lbd closes what the last attack left
		}
		r := measure(ctx, o, t, name, logger)
		rows = append(rows, r)
		if r.err != nil {
			return rows, fmt.Errorf("%s: %w", name, r.err)
		}
		if ctx.Err() != nil {
			return rows, ctx.Err()
		}
	}
	return rows, nil
}

// setup starts the backends and lbd (with -lbd), or checks the target.
func setup(ctx context.Context, o options, logger *log.Logger) (target, func(), error) {
	client := &http.Client{Timeout: 5 * time.Second}
	if o.target != "" {
		return target{data: strings.TrimSuffix(o.target, "/"), admin: strings.TrimSuffix(o.admin, "/"), client: client}, func() {}, nil
	}
	var closers []func()
	stop := func() {
		for _, f := range slices.Backward(closers) {
			f()
		}
	}
	var urls []string
	for i := range 3 {
		b, err := synth.Start("127.0.0.1:0", synth.Knobs{Name: fmt.Sprintf("b%d", i)})
		if err != nil {
			stop()
			return target{}, nil, err
		}
		closers = append(closers, func() { _ = b.Close() })
		urls = append(urls, b.URL())
	}
	big, err := startBackend(http.HandlerFunc(serveBig), 64<<10)
	if err != nil {
		stop()
		return target{}, nil, err
	}
	closers = append(closers, func() { _ = big.Close() })
	upload, err := startBackend(http.HandlerFunc(serveUpload), 0)
	if err != nil {
		stop()
		return target{}, nil, err
	}
	closers = append(closers, func() { _ = upload.Close() })
	data, err := lbdConfig(urls, "http://"+big.Addr, "http://"+upload.Addr, o.clientStall)
	if err != nil {
		stop()
		return target{}, nil, err
	}
	dir, err := os.MkdirTemp("", "lbd-attack-")
	if err != nil {
		stop()
		return target{}, nil, err
	}
	closers = append(closers, func() { os.RemoveAll(dir) })
	p, err := lbdproc.Start(ctx, o.lbd, dir, data)
	if err != nil {
		stop()
		return target{}, nil, err
	}
	closers = append(closers, p.Stop)
	logger.Printf("lbd at %s (admin %s), log %s", p.DataURL, p.AdminURL, p.LogPath)
	return target{data: p.DataURL, admin: p.AdminURL, client: client}, stop, nil
}

// measure runs one attack with the normal load beside it.
func measure(ctx context.Context, o options, t target, name string, logger *log.Logger) row {
	r := row{name: name, about: "no attack: the baseline"}
	var a *attackRun
	if name != "none" {
		at := findAttack(name, o.conns, o.floodConns)
		u, _ := url.Parse(t.data)
		a = &attackRun{attack: *at, addr: u.Host, drip: o.drip, pause: o.pause, spread: o.ramp / 2, answers: map[string]int64{}}
		r.about, r.conns = at.about, at.conns
	}
	r.failures = -t.backendFailures(ctx)
	r.refused = -t.metric(ctx, "lbd_connections_refused_total")
	r.conns0 = t.metric(ctx, "lbd_connections_open")

	actx, stopAttack := context.WithCancel(ctx)
	var attackers sync.WaitGroup
	if a != nil {
		attackers.Go(func() { a.flood(actx) })
		deadline := time.Now().Add(o.ramp)
		for a.open.Load() < int64(a.conns) && time.Now().Before(deadline) && ctx.Err() == nil {
			sleep(ctx, 50*time.Millisecond)
		}
		sleep(ctx, o.settle)
		r.open = a.open.Load()
	}
	logger.Printf("%s: %d attacking connections open; normal load %.0f/s for %v", name, r.open, o.rate, o.duration)

	rss := make(chan float64, 1)
	stopSampling := make(chan struct{})
	go func() { rss <- t.peak(ctx, "process_resident_memory_bytes", stopSampling) }()
	res, err := loadgen.Run(ctx, loadgen.Config{
		URL: t.data + "/", Rate: o.rate, N: int(o.rate*o.duration.Seconds()) + 1, Duration: o.duration,
		MaxOutstanding: 512, Timeout: o.timeout,
	})
	close(stopSampling)
	r.rssPeak = <-rss
	stopAttack()
	attackers.Wait()
	if err != nil {
		r.err = err
		return r
	}
	r.sent, r.ok = res.Sent+res.Dropped, res.Count2xx()
	r.failed = failures(res)
	r.p50, r.p99 = res.Latency.P50, res.Latency.P99
	r.failures += t.backendFailures(ctx)
	r.refused += t.metric(ctx, "lbd_connections_refused_total")
	if a != nil {
		r.dialed, r.ended = a.dialed.Load(), a.ended.Load()
		r.answers = a.answers
	}
	return r
}

// failures says what the normal requests that failed got: statuses with
// their reject reasons, transport errors, arrivals dropped by the load
// generator (too many outstanding), "-" for none.
func failures(res *loadgen.Result) string {
	var parts []string
	for _, code := range slices.Sorted(maps.Keys(res.Status)) {
		if code >= 200 && code < 300 {
			continue
		}
		parts = append(parts, fmt.Sprintf("%d x%d", code, res.Status[code]))
	}
	for _, k := range slices.Sorted(maps.Keys(res.Reject)) {
		parts = append(parts, fmt.Sprintf("%s x%d", k, res.Reject[k]))
	}
	for _, k := range slices.Sorted(maps.Keys(res.ErrorKinds)) {
		parts = append(parts, fmt.Sprintf("%s x%d", k, res.ErrorKinds[k]))
	}
	if res.Dropped > 0 {
		parts = append(parts, fmt.Sprintf("dropped x%d", res.Dropped))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// metric reads a metric family's sum from the admin listener (0 when
// there is no admin URL or no such metric).
func (t target) metric(ctx context.Context, name string) float64 {
	if t.admin == "" {
		return 0
	}
	v, _ := lbdproc.MetricAt(ctx, t.client, t.admin, name)
	return v
}

// backendFailures sums the failures lbd counted against its backends
// in the pools "default", "big" and "upload" (GET /admin/backends), 0 without an
// admin URL or for a pool the target does not have.
func (t target) backendFailures(ctx context.Context) float64 {
	if t.admin == "" {
		return 0
	}
	return t.failuresIn(ctx, "default") + t.failuresIn(ctx, "big") + t.failuresIn(ctx, "upload")
}

func (t target) failuresIn(ctx context.Context, pool string) float64 {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.admin+"/admin/backends?pool="+pool, nil)
	if err != nil {
		return 0
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var doc struct {
		Backends []struct {
			Failures float64 `json:"failures"`
		} `json:"backends"`
	}
	if json.NewDecoder(resp.Body).Decode(&doc) != nil {
		return 0
	}
	var n float64
	for _, b := range doc.Backends {
		n += b.Failures
	}
	return n
}

// peak samples a gauge every 250 ms until stop closes and returns its maximum.
func (t target) peak(ctx context.Context, name string, stop <-chan struct{}) float64 {
	var hi float64
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		hi = max(hi, t.metric(ctx, name))
		select {
		case <-stop:
			return hi
		case <-ctx.Done():
			return hi
		case <-tick.C:
		}
	}
}
