package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/lbd/lbd/cmd/internal/lbdproc"
	"github.com/lbd/lbd/config"
)

// baseConfig is lbd's built-in defaults over the given backends, with both
// listeners on kernel-chosen loopback ports and the access log off (it would
// only cost CPU the measurement shares).
func baseConfig(backends []string) *config.Config {
	cfg := config.Default()
	cfg.Listen, cfg.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.AccessLog.Mode = "off"
	for _, u := range backends {
		cfg.Backends = append(cfg.Backends, config.Backend{URL: u, Weight: 1, Protocol: "http1"})
	}
	return cfg
}

// startLBD validates cfg and starts the daemon with it.
func startLBD(ctx context.Context, bin, dir string, cfg *config.Config) (*lbdproc.Process, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("generated config: %w", err)
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	return lbdproc.Start(ctx, bin, dir, data)
}

// backendView is one entry of GET /admin/backends.
type backendView struct {
	URL         string  `json:"url"`
	State       string  `json:"state"`
	Breaker     string  `json:"breaker"`
	Requests    uint64  `json:"requests"`
	EWMAms      float64 `json:"ewma_ms"`
	Failures    uint64  `json:"failures"`
	Ejections   int     `json:"ejections"`
	BreakerTrip int     `json:"breaker_trips"`
}

// inRotation reports whether picks can reach the backend.
func (b backendView) inRotation() bool {
	return (b.State == "healthy" || b.State == "warming") && b.Breaker != "open"
}

// backends reads GET /admin/backends, by URL.
func backends(ctx context.Context, p *lbdproc.Process) (map[string]backendView, error) {
	var doc struct {
		Backends []backendView `json:"backends"`
	}
	if err := p.GetJSON(ctx, "/admin/backends", &doc); err != nil {
		return nil, err
	}
	out := make(map[string]backendView, len(doc.Backends))
	for _, b := range doc.Backends {
		out[b.URL] = b
	}
	return out, nil
}

// waitFor polls cond every 10ms until it holds, ctx ends or limit passes,
// and returns how long it took from since.
func waitFor(ctx context.Context, since time.Time, limit time.Duration, cond func() (bool, error)) (time.Duration, error) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return 0, err
		}
		if ok {
			return time.Since(since), nil
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return 0, fmt.Errorf("not within %v", limit)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}
