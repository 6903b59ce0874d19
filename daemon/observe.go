package daemon

import (
	"time"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/controller"
)

// startObservers starts the control loops that watch lbd rather than steer
// it: the metrics dumper (the rates window of /admin/metrics/json and the
// metrics_dump files) and the scaling advisory over every pool's backends.
// Both read what /metrics serves or what the backends publish; neither is
// on the request path.
func (d *Daemon) startObservers(cfg *config.Config) error {
	d.advisory = controller.NewAdvisory(controller.AdvisoryConfig{
		Source: d.backendReadings, Registry: d.registry, Logger: d.log,
	})
	d.closers.push("advisory", d.advisory.Stop)
	d.prom.MustRegister(d.advisory)
	md := cfg.MetricsDump
	dm, err := controller.NewDumper(controller.DumperConfig{
		Gatherer: d.prom, Dir: md.Dir, Interval: md.Interval.D(), Keep: md.Keep,
		Registry: d.registry, Logger: d.log,
	})
	if err != nil {
		return err
	}
	d.dumper = dm
	d.closers.push("metrics dumper", dm.Stop) // stopped before the advisory: it writes its last line
	return nil
}

// backendReadings feeds the advisory: every pool's backends, by
// "pool/url" outside the pool "default" so that one URL in two pools is
// two readings.
func (d *Daemon) backendReadings() []controller.Reading {
	if d.owner == nil {
		return nil
	}
	var out []controller.Reading
	for _, p := range d.owner.table().Pools {
		rt, ok := d.owner.pool(p.Name)
		if !ok {
			continue
		}
		for _, h := range rt.sched.Picker().Backends() {
			snap := h.Snapshot()
			name := h.URL()
			if p.Name != "default" {
				name = p.Name + "/" + name
			}
			out = append(out, controller.Reading{Backend: name, Latency: snap.EWMA, Eligible: snap.Eligible})
		}
	}
	return out
}

// trafficFigures feeds GET /admin/metrics/json's totals (now, read from the
// registry afresh so they include the request just before) and rates
// (over the dumper's window).
func (d *Daemon) trafficFigures() (totals, rates any) {
	mfs, _ := d.prom.Gather() // a failing collector leaves its own figures out
	return controller.Reduce(mfs, time.Now()).Totals, d.dumper.View().Rates
}

func (d *Daemon) advisoryReport() any { return d.advisory.Report() }
