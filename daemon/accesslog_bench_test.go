package daemon

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/internal/synth"
)

// BenchmarkAccessLogThroughput measures requests per second through an
// in-process lbd to one instant synthetic backend with the access log off,
// on (to a file), on to a pipe (stdout captured by journald or a container
// runtime; a goroutine drains it) and sampled at 10%, 32 requests in flight. Client, lbd and
// backend share the process, so cpu-µs/req (user+system CPU of the whole
// process per request) is the steadier figure on a shared machine; req/s
// is what the client saw. The log must cost less than 10% of either.
//
//	go test -run '^$' -bench AccessLogThroughput -benchtime 20000x -count 5 ./cmd/lbd/
func BenchmarkAccessLogThroughput(b *testing.B) {
	for _, mode := range []string{"off", "on", "on-pipe", "sampled"} {
		b.Run(mode, func(b *testing.B) {
			be, err := synth.Start("127.0.0.1:0", synth.Knobs{Name: "a"}, synth.WithSeed(1))
			require.NoError(b, err)
			defer be.Close()
			cfg := config.Default()
			cfg.Listen, cfg.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0"
			cfg.Warmup.Duration = 0
			cfg.Backends = []config.Backend{{URL: be.URL(), Weight: 1, Protocol: "http1"}}
			cfg.AccessLog = config.AccessLog{Mode: mode, SampleRate: 0.1, File: filepath.Join(b.TempDir(), "access.log")}
			if mode == "on-pipe" {
				cfg.AccessLog.Mode, cfg.AccessLog.File = "on", drainedPipe(b)
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
		})
	}
}

// cpuTime returns the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// drainedPipe returns a path that opens the write end of a pipe whose read
// end a goroutine discards until the benchmark ends.
func drainedPipe(b *testing.B) string {
	r, w, err := os.Pipe()
	require.NoError(b, err)
	done := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, r); close(done) }()
	b.Cleanup(func() { w.Close(); <-done; r.Close() })
	return fmt.Sprintf("/proc/self/fd/%d", w.Fd())
}
