package main

import (
	"context"
	"fmt"
	"time"
)

// healthStale is how long the health checker may go without a tick before
// /admin/selftest calls its loop dead; it ticks every 10-100ms.
const healthStale = 2 * time.Second

// selftestChecks are the daemon's probes for /admin/selftest beyond what the
// admin server checks itself (every actor answers a ping, the scheduler
// picks, the metrics registry gathers): the control loops whose liveness a
// ping alone does not show.
func (a *App) selftestChecks() map[string]func(context.Context) (string, error) {
	checks := map[string]func(context.Context) (string, error){}
	if a.health != nil {
		checks["health"] = func(context.Context) (string, error) {
			return healthAlive(a.health.Status().LastTick, a.health.Status().Probes, time.Now())
		}
	}
	return checks
}

// healthAlive judges the health checker's loop by its last published tick:
// a loop that answers pings but no longer ticks probes nothing.
func healthAlive(lastTick time.Time, probes uint64, now time.Time) (string, error) {
	age := now.Sub(lastTick)
	if age > healthStale {
		return "", fmt.Errorf("health checker last ticked %v ago (more than %v): backends are not being probed", age.Round(time.Millisecond), healthStale)
	}
	return fmt.Sprintf("ticked %v ago, %d probes so far", age.Round(time.Millisecond), probes), nil
}
