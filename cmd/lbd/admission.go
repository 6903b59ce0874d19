package main

import (
	"net/http"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/controller"
	"github.com/lbd/lbd/proxy"
)

// startAdmission builds the admission control from the admission and aimd
// sections: the adaptive limiter's actor (when enabled), the per-client
// buckets and the hard cap. It returns how the data plane names clients.
func (a *App) startAdmission(cfg *config.Config) (func(*http.Request) string, error) {
	clientIP, err := proxy.NewClientIP(cfg.Admission.TrustedProxies)
	if err != nil {
		return nil, err
	}
	ad := cfg.Admission
	opts := proxy.AdmissionOptions{
		MaxInflight: ad.MaxInflight, RatePerClient: ad.RatePerClient, BurstPerClient: ad.BurstPerClient,
		MaxClients: ad.MaxClients, ClientIdle: ad.ClientIdle.D(), Registerer: a.prom,
	}
	if m := cfg.AIMD; m.Enabled {
		a.limiter, err = controller.NewLimiter(a.registry, controller.LimiterConfig{
			Algorithm: m.Algorithm, Target: m.TargetLatency.D(), Percentile: m.Percentile,
			MinLimit: m.MinLimit, MaxLimit: m.MaxLimit, Increase: m.Increase, DecreaseFactor: m.DecreaseFactor,
			Interval: m.Interval.D(), SlowStart: m.SlowStart, Logger: a.log,
		})
		if err != nil {
			return nil, err
		}
		opts.Limit = a.limiter
	}
	a.admission = proxy.NewAdmission(opts)
	return clientIP, nil
}

// AdmissionState is the admission control's state for /admin/metrics/json:
// the admission's counters and, when the adaptive limit runs, its
// controller's last decision.
type AdmissionState struct {
	Admission proxy.AdmissionStatus `json:"admission"`
	AIMD      *controller.Status    `json:"aimd,omitempty"`
}

// AdmissionStatus returns the admission control's current state.
func (a *App) AdmissionStatus() AdmissionState {
	s := AdmissionState{Admission: a.admission.Status()}
	if a.limiter != nil {
		st := a.limiter.Status()
		s.AIMD = &st
	}
	return s
}
