package main

import (
	"context"
	"errors"
	"time"

	"github.com/lbd/lbd/controller"
)

// startObservers starts the control loops that watch lbd rather than steer
// it: the metrics dumper (the rates window of /admin/metrics/json and the
// metrics_dump files) and the scaling advisory. Both read what /metrics
// serves or what the backends publish; neither is on the request path.
func (a *App) startObservers() error {
	a.advisory = controller.NewAdvisory(controller.AdvisoryConfig{
		Source: controller.BackendReadings(a.sched), Registry: a.registry, Logger: a.log,
	})
	a.prom.MustRegister(a.advisory)
	md := a.cfg.MetricsDump
	d, err := controller.NewDumper(controller.DumperConfig{
		Gatherer: a.prom, Dir: md.Dir, Interval: md.Interval.D(), Keep: md.Keep,
		Registry: a.registry, Logger: a.log,
	})
	if err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		return errors.Join(err, a.advisory.Stop(ctx))
	}
	a.dumper = d
	return nil
}

// sampleNow reads the registry afresh, so /admin/metrics/json's totals
// include the request that came just before it.
func (a *App) sampleNow() controller.Sample {
	mfs, _ := a.prom.Gather() // a failing collector leaves its own figures out
	return controller.Reduce(mfs, time.Now())
}

// trafficFigures feeds GET /admin/metrics/json's totals (now) and rates
// (over the dumper's window).
func (a *App) trafficFigures() (totals, rates any) {
	return a.sampleNow().Totals, a.dumper.View().Rates
}

func (a *App) advisoryReport() any { return a.advisory.Report() }

// stopObservers stops the dumper (which writes its last line) and the advisory.
func (a *App) stopObservers(ctx context.Context) error {
	var errs []error
	if a.dumper != nil {
		errs = append(errs, a.dumper.Stop(ctx))
	}
	if a.advisory != nil {
		errs = append(errs, a.advisory.Stop(ctx))
	}
	return errors.Join(errs...)
}
