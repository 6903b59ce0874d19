package daemon

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/internal/synth"
)

// BenchmarkTracingThroughput measures requests through an in-process lbd to
// one instant synthetic backend with tracing off, on at ratio 0.01 and on at
// ratio 1, 32 requests in flight over keep-alive loopback connections. The
// collector is an HTTP server that reads each export and answers 200
// without decoding it, so the figures are lbd's cost (spans, propagation,
// batching, protobuf encoding, the export's HTTP), not a collector's.
// cpu-µs/req is the user+system CPU of the whole process (client, lbd,
// backend) per request: compare variants within one run. The access log is
// off so that it does not dilute the difference.
//
//	go test -run '^$' -bench TracingThroughput -benchmem -benchtime 20000x -count 6 ./daemon/
func BenchmarkTracingThroughput(b *testing.B) {
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer collector.Close()
	for _, v := range []struct {
		name  string
		ratio *float64
	}{{"off", nil}, {"ratio=0.01", ratio(0.01)}, {"ratio=1", ratio(1)}} {
		b.Run(v.name, func(b *testing.B) {
			be, err := synth.Start("127.0.0.1:0", synth.Knobs{Name: "a"}, synth.WithSeed(1))
			require.NoError(b, err)
			defer be.Close()
			cfg := config.Default()
			cfg.Listen, cfg.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0"
			cfg.Warmup.Duration = 0
			cfg.AccessLog.Mode = "off"
			cfg.Backends = []config.Backend{{URL: be.URL(), Weight: 1, Protocol: "http1"}}
			if v.ratio != nil {
				cfg.Tracing = &config.Tracing{Endpoint: collector.URL, SampleRatio: v.ratio}
			}
			require.NoError(b, cfg.Validate())
			d := startDaemon(b, cfg)
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				require.NoError(b, d.Shutdown(ctx))
			}()
			url := "http://" + d.DataAddr() + "/"
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			defer client.CloseIdleConnections()

			b.SetParallelism(16)
			b.ReportAllocs()
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTime()
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
			if v.ratio != nil { // spans dropped would make the variant look cheaper than it is
				b.ReportMetric(droppedSpans(b, d)/float64(b.N), "dropped/req")
			}
		})
	}
}

// droppedSpans sums lbd_tracing_spans_dropped_total over its reasons.
func droppedSpans(b *testing.B, d *Daemon) float64 {
	mfs, err := d.prom.Gather()
	require.NoError(b, err)
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "lbd_tracing_spans_dropped_total" {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}
