package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/lbd/lbd/cmd/internal/synth"
	"github.com/lbd/lbd/config"
)

// demoBackends have clearly different speeds, so switching policy shows:
// rr spreads evenly, p2c-ewma leans hard on the fast one.
var demoBackends = []synth.Knobs{
	{Name: "demo-fast", Latency: 2 * time.Millisecond, Jitter: time.Millisecond, Size: 64},
	{Name: "demo-medium", Latency: 15 * time.Millisecond, Jitter: 5 * time.Millisecond, Size: 64},
	{Name: "demo-slow", Latency: 60 * time.Millisecond, Jitter: 20 * time.Millisecond, Size: 64},
}

// startDemo starts the demo backends on loopback and makes them the config's backends.
func startDemo(cfg *config.Config, log *slog.Logger) (stop func(), err error) {
	var running []*synth.Running
	stop = func() {
		for _, r := range running {
			_ = r.Close()
		}
	}
	cfg.Backends = nil
	for _, k := range demoBackends {
		r, err := synth.Start("127.0.0.1:0", k)
		if err != nil {
			stop()
			return nil, fmt.Errorf("%s: %w", k.Name, err)
		}
		running = append(running, r)
		cfg.Backends = append(cfg.Backends, config.Backend{URL: r.URL(), Weight: 1, Protocol: "http1"})
		log.Info("demo backend", "name", k.Name, "url", r.URL(), "latency", k.Latency.String())
	}
	return stop, nil
}
