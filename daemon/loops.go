package daemon

import (
	"github.com/lbd/lbd/backendactor"
	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/controller"
)

// A pool's control loops that take failing backends out and bring them
// back: the active health checker (unless health.disabled) and the outlier
// detector (unless outlier.disabled), one of each per pool, named after it.
// The circuit breakers need no loop: each lives in its backend's actor.

func healthSettings(h config.Health) controller.HealthSettings {
	return controller.HealthSettings{
		Interval: h.Interval.D(), Timeout: h.Timeout.D(), Jitter: h.Jitter,
		Path: h.Path, ExpectedStatus: h.ExpectedStatus,
	}
}

func (o *owner) newHealthChecker(rt *poolRuntime, s config.Pool) (*controller.HealthChecker, error) {
	d, h := o.d, s.Health
	sched := rt.sched
	return controller.NewHealthChecker(controller.HealthConfig{
		Name: actorName("health-checker", rt.name), Pool: rt.name,
		Interval: h.Interval.D(), Timeout: h.Timeout.D(), Jitter: h.Jitter,
		Backends: func() []*backendactor.Handle { return sched.Picker().Backends() },
		Prober: controller.NewHTTPProber(controller.HTTPProbeConfig{
			Path: h.Path, ExpectedStatus: h.ExpectedStatus, DialTimeout: o.file.Timeouts.Dial.D(),
		}),
		Registry: d.registry, Registerer: d.prom, Logger: d.log,
	})
}

func outlierRules(o config.Outlier) controller.OutlierRules {
	return controller.OutlierRules{
		Consecutive5xx: o.Consecutive5xx, ConsecutiveGateway: o.ConsecutiveGatewayErr,
		BaseEjection: o.BaseEjection.D(), MaxEjection: o.MaxEjection.D(), MaxEjectionPercent: o.MaxEjectionPercent,
		SuccessRateMinHosts: o.SuccessRateMinHosts, SuccessRateVolume: o.SuccessRateMinRequest,
		SuccessRateStdevFactor: o.SuccessRateStdevFactor,
	}
}

func (o *owner) newOutlierDetector(rt *poolRuntime, s config.Pool) (*controller.OutlierDetector, error) {
	d, sched := o.d, rt.sched
	return controller.NewOutlierDetector(controller.OutlierConfig{
		Name: actorName("outlier-detector", rt.name), Pool: rt.name,
		Rules: outlierRules(s.Outlier), Interval: s.Outlier.Interval.D(),
		Backends: func() []*backendactor.Handle { return sched.Picker().Backends() },
		Registry: d.registry, Registerer: d.prom, Logger: d.log,
	})
}

// outlierReport is GET /admin/outliers' body for one pool.
func (o *owner) outlierReport(pool string) (any, bool) {
	rt, ok := o.pool(pool)
	if !ok {
		return nil, false
	}
	if rt.outlier == nil {
		return controller.DisabledOutlierReport(), true
	}
	return rt.outlier.Report(), true
}
