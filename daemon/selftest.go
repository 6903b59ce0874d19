package daemon

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// healthStale is how long the health checker may go without a tick before
// /admin/selftest calls its loop dead; it ticks every 10-100ms.
const healthStale = 2 * time.Second

// selftestChecks are the daemon's probes for /admin/selftest beyond what the
// admin server checks itself (every actor answers a ping, the scheduler
// picks, the metrics registry gathers): the control loops whose liveness a
// ping alone does not show.
func (d *Daemon) selftestChecks() map[string]func(context.Context) (string, error) {
	return map[string]func(context.Context) (string, error){
		"health": func(context.Context) (string, error) { return d.healthLoopsAlive(time.Now()) },
	}
}

// healthLoopsAlive checks every pool's health checker; a pool whose checks
// are turned off has none, and says so.
func (d *Daemon) healthLoopsAlive(now time.Time) (string, error) {
	var parts []string
	for _, name := range d.owner.fileConfig().PoolNames() {
		rt, ok := d.owner.pool(name)
		if !ok {
			continue
		}
		hc := rt.health
		if hc == nil {
			parts = append(parts, name+": active checks off")
			continue
		}
		st := hc.Status()
		detail, err := healthAlive(st.LastTick, st.Probes, now)
		if err != nil {
			return "", fmt.Errorf("pool %s: %w", name, err)
		}
		parts = append(parts, name+": "+detail)
	}
	return strings.Join(parts, "; "), nil
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
