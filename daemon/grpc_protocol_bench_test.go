package daemon

import (
	"context"
	"testing"

	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/lbd/lbd/config"
)

// BenchmarkGRPCUnary measures unary calls per second from one client
// connection, 32 calls in flight, straight to one grpc-go backend and
// through lbd (h2c in, h2c out) to one and to three backends. Client, lbd
// and backends share the process and its cores, so the through-lbd figures
// include lbd's CPU taken from the others: compare them with each other, and
// read docs/BENCHMARKS.md for how they were run.
//
//	go test -run '^$' -bench GRPCUnary -benchtime 20000x -count 5 ./cmd/lbd/
func BenchmarkGRPCUnary(b *testing.B) {
	cases := []struct {
		name     string
		backends int
		viaLBD   bool
	}{
		{"direct", 1, false},
		{"lbd-1-backend", 1, true},
		{"lbd-3-backends", 3, true},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			backends := startGRPCBackends(b, []string{"g1", "g2", "g3"}[:c.backends]...)
			addr := backends[0].addr
			if c.viaLBD {
				_, addr, _ = startBareApp(b, func(cfg *config.Config) {
					cfg.H2C, cfg.Health.Disabled = true, true
					for _, g := range backends {
						cfg.Backends = append(cfg.Backends, config.Backend{URL: g.url(), Weight: 1, Protocol: "h2c"})
					}
				})
			}
			client := grpcClient(b, addr)
			req := &testpb.SimpleRequest{ResponseSize: 128, Payload: &testpb.Payload{Body: make([]byte, 128)}}
			if _, err := client.UnaryCall(context.Background(), req); err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(16) // 16 x GOMAXPROCS callers on the one connection
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := client.UnaryCall(context.Background(), req); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
		})
	}
}
