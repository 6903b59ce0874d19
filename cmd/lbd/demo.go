package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/internal/synth"
)

// The demo runs three embedded backends in two pools: /api/ goes to the
// pool "api" over a fast and a slow backend (p2c-ewma leans hard on the
// fast one; switch its policy to rr and watch the spread even out), every
// other request to the pool "default" over a third.
var demoAPI = []synth.Knobs{
	{Name: "demo-api-fast", Latency: 2 * time.Millisecond, Jitter: time.Millisecond, Size: 64},
	{Name: "demo-api-slow", Latency: 60 * time.Millisecond, Jitter: 20 * time.Millisecond, Size: 64},
}

var demoWeb = synth.Knobs{Name: "demo-web", Latency: 15 * time.Millisecond, Jitter: 5 * time.Millisecond, Size: 64}

// demoBackends are the running demo backends.
type demoBackends struct {
	api []string
	web string
	all []*synth.Running
}

// startDemo starts the demo backends on loopback.
func startDemo(log *slog.Logger) (*demoBackends, error) {
	d := &demoBackends{}
	start := func(k synth.Knobs) (string, error) {
		r, err := synth.Start("127.0.0.1:0", k)
		if err != nil {
			return "", fmt.Errorf("%s: %w", k.Name, err)
		}
		d.all = append(d.all, r)
		log.Info("demo backend", "name", k.Name, "url", r.URL(), "latency", k.Latency.String())
		return r.URL(), nil
	}
	for _, k := range demoAPI {
		u, err := start(k)
		if err != nil {
			d.stop()
			return nil, err
		}
		d.api = append(d.api, u)
	}
	u, err := start(demoWeb)
	if err != nil {
		d.stop()
		return nil, err
	}
	d.web = u
	return d, nil
}

// apply makes the demo's pools and routes the config's (on every load:
// the demo backends are in no file).
func (d *demoBackends) apply(cfg *config.Config) {
	backend := func(name, url string) config.Backend {
		return config.Backend{URL: url, Name: name, Weight: 1, Protocol: "http1"}
	}
	cfg.Backends = []config.Backend{backend(demoWeb.Name, d.web)}
	api, _ := cfg.PoolConfig(config.DefaultPool)
	api.Backends, api.Canary = nil, config.Canary{}
	for i, u := range d.api {
		api.Backends = append(api.Backends, backend(demoAPI[i].Name, u))
	}
	cfg.Pools = map[string]config.Pool{"api": api}
	cfg.Routes = []config.Route{
		{Name: "api", Match: config.RouteMatch{PathPrefix: "/api/"}, Pool: "api"},
		{Name: "web", Match: config.RouteMatch{}, Pool: config.DefaultPool},
	}
}

func (d *demoBackends) stop() {
	for _, r := range d.all {
		_ = r.Close()
	}
}
