package daemon

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/internal/synth"
)

// BenchmarkTapListeners measures requests per second through an in-process
// lbd (p2c-ewma over three instant synthetic backends, 16 requests in
// flight) with no one on the tap, and with one and three listeners of
// GET /admin/tap reading over HTTP as `lbd ctl tap` does. As in
// BenchmarkAccessLogThroughput, client, lbd, backends and listeners share
// the process: cpu-µs/req is the steadier figure on a shared machine.
// Three listeners must cost less than 5% of either; events a listener
// missed rather than slow the data plane are reported as dropped/req.
//
//	go test -run '^$' -bench TapListeners -benchtime 20000x -count 6 ./daemon/
func BenchmarkTapListeners(b *testing.B) {
	for _, n := range []int{0, 1, 3} {
		b.Run(map[int]string{0: "none", 1: "1-listener", 3: "3-listeners"}[n], func(b *testing.B) {
			var bes []*synth.Running
			cfg := config.Default()
			cfg.Listen, cfg.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0"
			cfg.Warmup.Duration = 0
			cfg.AccessLog.Mode = "off"
			for _, name := range []string{"a", "b", "c"} {
				be, err := synth.Start("127.0.0.1:0", synth.Knobs{Name: name}, synth.WithSeed(1))
				require.NoError(b, err)
				bes = append(bes, be)
				cfg.Backends = append(cfg.Backends, config.Backend{URL: be.URL(), Weight: 1, Protocol: "http1"})
			}
			defer func() {
				for _, be := range bes {
					_ = be.Close()
				}
			}()
			require.NoError(b, cfg.Validate())
			d := startDaemon(b, cfg)
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				require.NoError(b, d.Shutdown(ctx))
			}()
			got, stop := tapListeners(b, "http://"+d.AdminAddr(), n)
			url := "http://" + d.DataAddr() + "/"
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			defer client.CloseIdleConnections()

			b.SetParallelism(8) // x GOMAXPROCS 2: 16 requests in flight
			b.ResetTimer()
			start, cpu0, drop0 := time.Now(), cpuTime(), d.proxy.Tap().Dropped()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := client.Get(url)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e3, "cpu-µs/req")
			b.StopTimer()
			dropped := d.proxy.Tap().Dropped() - drop0
			stop()
			if n > 0 {
				b.ReportMetric(float64(dropped)/float64(b.N)/float64(n), "dropped/req")
				b.ReportMetric(float64(got.Load())/float64(b.N)/float64(n), "seen/req")
			}
		})
	}
}

// BenchmarkTapInterleaved is BenchmarkTapListeners made precise enough
// for a shared machine: one lbd serves alternating blocks of 2,000
// requests with no listener and with three, b.N requests in all, and the
// CPU and wall time of each kind of block are summed, so the neighbours'
// load, which drifts over seconds, weighs on both alike. It reports each
// kind's cpu-µs/req and req/s and the ratios (tap / none).
//
//	go test -run '^$' -bench TapInterleaved -benchtime 200000x -count 5 ./daemon/
func BenchmarkTapInterleaved(b *testing.B) {
	const block = 2000
	d, url := tapBenchLBD(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	var cpu, wall [2]time.Duration
	var reqs [2]int
	b.ResetTimer()
	for i := 0; reqs[0]+reqs[1] < b.N; i++ {
		mode := i % 2
		n := min(block, b.N-reqs[0]-reqs[1])
		stop := func() {}
		if mode == 1 {
			_, stop = tapListeners(b, "http://"+d.AdminAddr(), 3)
		}
		start, cpu0 := time.Now(), cpuTime()
		load(b, client, url, n, 16)
		cpu[mode] += cpuTime() - cpu0
		wall[mode] += time.Since(start)
		reqs[mode] += n
		stop()
	}
	b.StopTimer()
	perReq := func(m int) float64 { return float64(cpu[m]) / float64(reqs[m]) / 1e3 }
	rate := func(m int) float64 { return float64(reqs[m]) / wall[m].Seconds() }
	b.ReportMetric(perReq(0), "none-cpu-µs/req")
	b.ReportMetric(perReq(1), "tap-cpu-µs/req")
	b.ReportMetric(perReq(1)/perReq(0), "cpu-ratio")
	b.ReportMetric(rate(0), "none-req/s")
	b.ReportMetric(rate(1), "tap-req/s")
	b.ReportMetric(rate(1)/rate(0), "req/s-ratio")
	b.ReportMetric(float64(d.proxy.Tap().Dropped()), "dropped")
}

// load sends n GETs from c goroutines, each request after the last.
func load(b *testing.B, client *http.Client, url string, n, c int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range c {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				resp, err := client.Get(url)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
}

// tapBenchLBD runs an lbd over three instant backends, p2c-ewma, the
// access log off, until the benchmark ends.
func tapBenchLBD(b *testing.B) (*Daemon, string) {
	cfg := config.Default()
	cfg.Listen, cfg.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Warmup.Duration = 0
	cfg.AccessLog.Mode = "off"
	for _, name := range []string{"a", "b", "c"} {
		be, err := synth.Start("127.0.0.1:0", synth.Knobs{Name: name}, synth.WithSeed(1))
		require.NoError(b, err)
		b.Cleanup(func() { _ = be.Close() })
		cfg.Backends = append(cfg.Backends, config.Backend{URL: be.URL(), Weight: 1, Protocol: "http1"})
	}
	require.NoError(b, cfg.Validate())
	d := startDaemon(b, cfg)
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(b, d.Shutdown(ctx))
	})
	return d, "http://" + d.DataAddr() + "/"
}

// tapListeners opens n tap streams, each read by a goroutine that counts
// its events; stop closes them and waits for the readers.
func tapListeners(b *testing.B, adminURL string, n int) (*atomic.Int64, func()) {
	var got atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range n {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, adminURL+"/admin/tap", nil)
		require.NoError(b, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(b, err)
		require.Equal(b, http.StatusOK, resp.StatusCode)
		wg.Go(func() { // as cheap a reader as can count: the client's cost is not lbd's
			defer resp.Body.Close()
			buf := make([]byte, 256<<10)
			for {
				n, err := io.ReadFull(resp.Body, buf)
				got.Add(int64(bytes.Count(buf[:n], []byte("\ndata: {")))) // an event across two reads is missed: "seen" is a floor
				if err != nil {
					return
				}
			}
		})
	}
	return &got, func() { cancel(); wg.Wait() }
}
