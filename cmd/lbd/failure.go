package main

import (
	"context"
	"crypto/tls"
	"errors"

	"github.com/lbd/lbd/backendactor"
	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/controller"
	"github.com/lbd/lbd/proxy"
)

// startFailureDetection starts the control loops that take failing backends
// out and bring them back: the active health checker (unless
// health.disabled) and the outlier detector (unless outlier.disabled). The
// circuit breakers need no loop: each lives in its backend's actor.
func (a *App) startFailureDetection(cfg *config.Config, upTLS map[string]proxy.UpstreamTLS) error {
	backends := func() []*backendactor.Handle { return a.sched.Picker().Backends() }
	if h := cfg.Health; !h.Disabled {
		probeTLS := make(map[string]*tls.Config, len(upTLS))
		for u, t := range upTLS {
			probeTLS[u] = &tls.Config{RootCAs: t.RootCAs, ServerName: t.ServerName, MinVersion: tls.VersionTLS12}
		}
		hc, err := controller.NewHealthChecker(controller.HealthConfig{
			Interval: h.Interval.D(), Timeout: h.Timeout.D(), Jitter: h.Jitter, Backends: backends,
			Prober: controller.NewHTTPProber(controller.HTTPProbeConfig{
				Path: h.Path, ExpectedStatus: h.ExpectedStatus, DialTimeout: cfg.Timeouts.Dial.D(), TLS: probeTLS,
			}),
			Registry: a.registry, Registerer: a.prom, Logger: a.log,
		})
		if err != nil {
			return err
		}
		a.health = hc
	}
	if o := cfg.Outlier; !o.Disabled {
		d, err := controller.NewOutlierDetector(controller.OutlierConfig{
			Rules: controller.OutlierRules{
				Consecutive5xx: o.Consecutive5xx, ConsecutiveGateway: o.ConsecutiveGatewayErr,
				BaseEjection: o.BaseEjection.D(), MaxEjection: o.MaxEjection.D(), MaxEjectionPercent: o.MaxEjectionPercent,
				SuccessRateMinHosts: o.SuccessRateMinHosts, SuccessRateVolume: o.SuccessRateMinRequest,
				SuccessRateStdevFactor: o.SuccessRateStdevFactor,
			},
			Interval: o.Interval.D(), Backends: backends,
			Registry: a.registry, Registerer: a.prom, Logger: a.log,
		})
		if err != nil {
			return errors.Join(err, a.stopFailureDetection(context.Background()))
		}
		a.outliers = d
	}
	return nil
}

// outlierReport is GET /admin/outliers' body.
func (a *App) outlierReport() any {
	if a.outliers == nil {
		return controller.DisabledOutlierReport()
	}
	return a.outliers.Report()
}

// stopFailureDetection stops both loops; ejections in force run their
// course in the backend actors, which stop next.
func (a *App) stopFailureDetection(ctx context.Context) error {
	var errs []error
	if a.health != nil {
		errs = append(errs, a.health.Stop(ctx))
	}
	if a.outliers != nil {
		errs = append(errs, a.outliers.Stop(ctx))
	}
	return errors.Join(errs...)
}
