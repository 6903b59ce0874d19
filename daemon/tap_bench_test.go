package daemon

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
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
		wg.Go(func() {
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "data: {") {
					got.Add(1)
				}
			}
		})
	}
	return &got, func() { cancel(); wg.Wait() }
}
