package main

import (
	"encoding/json"
	"fmt"
	"time"
)

// lbdConfig is the config file for a mode: "off" has no adaptive limit (the
// hard cap of admission.max_inflight only); "aimd" and "gradient2" turn the
// adaptive limit on with that algorithm and lbd's documented defaults, plus
// aimd.slow_start when slowStart is set.
func lbdConfig(mode string, backends []string, target time.Duration, maxInflight int, slowStart bool) ([]byte, error) {
	type backend struct {
		URL    string `json:"url"`
		Weight int    `json:"weight"`
	}
	bs := make([]backend, len(backends))
	for i, u := range backends {
		bs[i] = backend{URL: u, Weight: 1}
	}
	aimd := map[string]any{"enabled": false, "max_limit": maxInflight}
	switch mode {
	case "off":
	case "aimd", "gradient2":
		aimd = map[string]any{
			"enabled": true, "algorithm": mode, "target_latency": target.String(), "max_limit": maxInflight,
			"slow_start": slowStart,
		}
	default:
		return nil, fmt.Errorf("mode %q: want off, aimd or gradient2", mode)
	}
	return json.MarshalIndent(map[string]any{
		"listen":     "127.0.0.1:0",
		"admin":      map[string]any{"listen": "127.0.0.1:0"},
		"backends":   bs,
		"policy":     "lc",
		"warmup":     map[string]any{"duration": "0s"},
		"admission":  map[string]any{"max_inflight": maxInflight},
		"aimd":       aimd,
		"access_log": map[string]any{"mode": "off"},
	}, "", "  ")
}
