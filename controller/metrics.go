package controller

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbd/lbd/scheduler"
)

// defaultPool is the pool of the config's top-level backends.
const defaultPool = scheduler.DefaultPool

// sharedCounterVec registers a counter family in reg, or returns the one
// registered there before: the actors of several pools each count under
// their own "pool" label in one family, which Prometheus lets a registry
// hold only once.
func sharedCounterVec(reg prometheus.Registerer, o prometheus.CounterOpts, labels ...string) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(o, labels)
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
			return existing, nil
		}
	}
	return nil, err
}
