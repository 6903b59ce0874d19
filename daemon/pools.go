package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lbd/lbd/backendactor"
	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/controller"
	"github.com/lbd/lbd/proxy"
	"github.com/lbd/lbd/routing"
	"github.com/lbd/lbd/scheduler"
)

// poolRuntime is one pool's running parts: its scheduler actor (with the
// backend actors it owns), its health checker and outlier detector (nil
// when its config turns them off), and the data plane's view of it. The
// owner creates and stops them; readers use them through the owner's
// published view, so a poolRuntime that has been published is never
// changed: a reconfiguration makes a changed copy (poolStep).
type poolRuntime struct {
	name     string
	sched    *scheduler.Scheduler
	health   *controller.HealthChecker
	outlier  *controller.OutlierDetector
	data     *proxy.Pool
	settings config.Pool // the pool's settings as applied
}

// rulesOf turns a pool's sections into its backend actors' rules.
func rulesOf(s config.Pool) backendactor.Rules {
	return backendactor.Rules{
		Breaker: backendactor.BreakerConfig{
			FailureThreshold: s.Breaker.FailureThreshold, OpenFor: s.Breaker.OpenFor.D(),
			MaxOpenFor: s.Breaker.MaxOpenFor.D(), HalfOpenProbes: s.Breaker.HalfOpenProbes,
		},
		Rise: s.Health.Rise, Fall: s.Health.Fall,
		Warmup: s.Warmup.Duration.D(), WarmupMinPercent: s.Warmup.MinWeightPercent,
		// With active checks, a backend added at runtime waits for its first
		// good probe (backendactor.Health); those of the start start healthy.
		HealthChecked: !s.Health.Disabled,
	}
}

func dataSettings(s config.Pool) proxy.PoolSettings {
	r := s.Retries
	return proxy.PoolSettings{
		Retries: proxy.RetryOptions{
			Max: r.Max, BudgetPercent: r.BudgetPercent, MinPerSecond: r.MinPerSecond,
			PerTryTimeout: r.PerTryTimeout.D(), BufferBodyBytes: r.BufferBodyBytes,
		},
		MaxInflight: int64(s.MaxInflight),
	}
}

// actorName is a per-pool actor's name: the plain name for "default" (the
// names lbd had before pools), "name:pool" for the others.
func actorName(name, pool string) string {
	if pool == config.DefaultPool {
		return name
	}
	return name + ":" + pool
}

// startPool starts a pool's scheduler with its backends, policy and canary,
// then its loops. The pools of lbd's start (whyStart) have backends that
// start healthy and at full weight.
func (o *owner) startPool(ctx context.Context, p *routing.Pool, w why) (*poolRuntime, error) {
	d := o.d
	template := backendactor.Config{OnTransition: d.transitionSink(p.Name)}
	sched, err := scheduler.New(scheduler.Config{
		Name: p.Name, Policy: p.Policy, StickyEnabled: p.Sticky.Enabled, StickyKey: p.Sticky.Key,
		Backend: template.WithRules(rulesOf(p.Settings)), Registry: d.registry, Logger: d.log,
	})
	if err != nil {
		return nil, fmt.Errorf("pool %s: %w", p.Name, err)
	}
	rt := &poolRuntime{name: p.Name, sched: sched, settings: p.Settings}
	for _, b := range p.Backends {
		if err := o.addBackend(ctx, rt, b, w); err != nil {
			return nil, errors.Join(err, rt.stopNow(ctx))
		}
	}
	if c := p.Canary; c.Backend != "" {
		if err := sched.SetCanary(ctx, c.Backend, c.Percent); err != nil {
			return nil, errors.Join(fmt.Errorf("pool %s canary: %w", p.Name, err), rt.stopNow(ctx))
		}
	}
	if err := o.startLoops(rt); err != nil {
		return nil, errors.Join(err, rt.stopNow(ctx))
	}
	rt.data = proxy.NewPool(p.Name, sched, dataSettings(p.Settings))
	return rt, nil
}

// addBackend starts b's actor in the pool (drained if the table says so).
func (o *owner) addBackend(ctx context.Context, rt *poolRuntime, b routing.Backend, w why) error {
	tc, err := upstreamTLS(b)
	if err != nil {
		return fmt.Errorf("pool %s backend %s: %w", rt.name, b.URL, err)
	}
	h, err := rt.sched.Add(ctx, scheduler.Spec{URL: b.URL, Name: b.Name, Weight: b.Weight, MaxInflight: b.MaxInflight,
		Protocol: b.Protocol, TLS: tc, Initial: w == whyStart, Cause: w.cause(actAdd, b)})
	if err != nil {
		return fmt.Errorf("pool %s: adding backend %s: %w", rt.name, b.URL, err)
	}
	if b.Draining {
		if err := h.Drain(ctx, w.cause(actDrain, b)); err != nil {
			return fmt.Errorf("pool %s: draining backend %s: %w", rt.name, b.URL, err)
		}
	}
	return nil
}

// startLoops starts the pool's health checker and outlier detector as its
// settings ask.
func (o *owner) startLoops(rt *poolRuntime) error {
	s := rt.settings
	if !s.Health.Disabled && rt.health == nil {
		hc, err := o.newHealthChecker(rt, s)
		if err != nil {
			return fmt.Errorf("pool %s health checker: %w", rt.name, err)
		}
		rt.health = hc
	}
	if !s.Outlier.Disabled && rt.outlier == nil {
		od, err := o.newOutlierDetector(rt, s)
		if err != nil {
			return fmt.Errorf("pool %s outlier detector: %w", rt.name, err)
		}
		rt.outlier = od
	}
	return nil
}

// stopNow stops the pool's loops and its scheduler with every backend
// actor at once (lbd's shutdown, or a pool that failed to start).
func (rt *poolRuntime) stopNow(ctx context.Context) error {
	return errors.Join(rt.stopLoops(ctx), rt.sched.Stop(ctx))
}

func (rt *poolRuntime) stopLoops(ctx context.Context) error {
	var errs []error
	if rt.health != nil {
		errs = append(errs, rt.health.Stop(ctx))
	}
	if rt.outlier != nil {
		errs = append(errs, rt.outlier.Stop(ctx))
	}
	return errors.Join(errs...)
}

// retire takes a removed pool out of service: its routes are gone
// already; its backends drain for up to grace, then everything stops. The
// daemon waits for it at shutdown.
func (o *owner) retire(rt *poolRuntime, grace time.Duration, cause string) {
	o.d.wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), grace+stopTimeout)
		defer cancel()
		for _, h := range rt.sched.Picker().Backends() {
			_ = h.Retire(ctx, time.Now().Add(grace), cause)
		}
		for _, h := range rt.sched.Picker().Backends() {
			select {
			case <-h.Done():
			case <-ctx.Done():
			}
		}
		if err := rt.stopNow(ctx); err != nil {
			o.d.log.Warn("removed pool did not stop cleanly", "pool", rt.name, ErrAttr(err))
		}
	})
}

// carryOut makes the pools match next, as plan says: new pools start, then
// the kept pools' backends, policies, canaries and settings change, then
// the new routing table goes live, and last the removed pools drain out.
// It goes on past a failed step and returns every failure.
func (o *owner) carryOut(ctx context.Context, plan routing.Plan, next *routing.Table, w why) error {
	var errs []error
	for _, name := range plan.PoolsAdded {
		p, _ := next.Pool(name)
		rt, err := o.startPool(ctx, p, w)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		o.pools[name] = rt
	}
	grace := o.file.ShutdownGrace.D()
	for _, s := range plan.Backends {
		rt, ok := o.pools[s.Pool]
		if !ok || contains(plan.PoolsAdded, s.Pool) {
			continue // a new pool started with its backends
		}
		if err := o.backendStep(ctx, rt, s, grace, w); err != nil {
			errs = append(errs, err)
		}
	}
	for _, s := range plan.Pools {
		if rt, ok := o.pools[s.Pool]; ok {
			p, _ := next.Pool(s.Pool)
			nrt, err := o.poolStep(ctx, rt, s, p)
			o.pools[s.Pool] = nrt
			errs = append(errs, err)
		}
	}
	o.d.proxy.SetRoutes(o.routes(next))
	for _, name := range plan.PoolsRemoved {
		if rt, ok := o.pools[name]; ok {
			delete(o.pools, name)
			o.retire(rt, grace, "config reload: its pool "+name+" is no longer in the file")
		}
	}
	return errors.Join(errs...)
}

func (o *owner) backendStep(ctx context.Context, rt *poolRuntime, s routing.BackendStep, grace time.Duration, w why) error {
	switch s.Action {
	case routing.Added:
		return o.addBackend(ctx, rt, s.New, w)
	case routing.Removed:
		return removeBackend(ctx, rt, s.URL, grace, w.cause(actRemove, s.Old))
	case routing.Replaced:
		if err := removeBackend(ctx, rt, s.URL, grace, w.cause(actReplace, s.Old)); err != nil {
			return err
		}
		return o.addBackend(ctx, rt, s.New, w)
	}
	h := rt.sched.Lookup(s.URL)
	if h == nil {
		return fmt.Errorf("pool %s: backend %s is not running", rt.name, s.URL)
	}
	var errs []error
	if s.Old.Weight != s.New.Weight {
		errs = append(errs, h.SetWeight(ctx, s.New.Weight))
	}
	if s.Old.MaxInflight != s.New.MaxInflight {
		errs = append(errs, h.SetCap(ctx, s.New.MaxInflight))
	}
	if s.Old.Name != s.New.Name {
		errs = append(errs, h.SetName(ctx, s.New.Name))
	}
	switch {
	case !s.Old.Draining && s.New.Draining:
		errs = append(errs, h.Drain(ctx, w.cause(actDrain, s.New)))
	case s.Old.Draining && !s.New.Draining:
		errs = append(errs, h.Undrain(ctx, w.cause(actUndrain, s.New)))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pool %s backend %s: %w", rt.name, s.URL, err)
	}
	return nil
}

func removeBackend(ctx context.Context, rt *poolRuntime, url string, grace time.Duration, cause string) error {
	if err := rt.sched.Remove(ctx, url, grace, cause); err != nil && !errors.Is(err, scheduler.ErrNotFound) {
		return fmt.Errorf("pool %s: removing backend %s: %w", rt.name, url, err)
	}
	return nil
}

// poolStep switches a kept pool's policy and canary and applies its
// changed settings to the actors that hold them. It returns the pool's
// runtime as it is now: a copy when its loops or settings changed.
func (o *owner) poolStep(ctx context.Context, rt *poolRuntime, s routing.PoolStep, p *routing.Pool) (*poolRuntime, error) {
	var errs []error
	if s.Policy != nil {
		errs = append(errs, rt.sched.SetPolicy(ctx, s.Policy.Policy, s.Policy.Sticky.Enabled, s.Policy.Sticky.Key))
	}
	if s.Canary != nil {
		errs = append(errs, rt.sched.SetCanary(ctx, s.Canary.Backend, s.Canary.Percent))
	}
	if len(s.Settings) > 0 {
		next := *rt
		errs = append(errs, o.reconfigurePool(ctx, &next, s, p.Settings))
		rt = &next
	}
	if err := errors.Join(errs...); err != nil {
		return rt, fmt.Errorf("pool %s: %w", rt.name, err)
	}
	return rt, nil
}

// reconfigurePool applies a pool's changed sections to rt (an unpublished copy): the backend actors'
// rules (breaker, rise and fall, warm-up), the health checker's schedule
// and probe, the outlier rules (each loop started or stopped when it was
// turned on or off), and the data plane's retries and cap.
func (o *owner) reconfigurePool(ctx context.Context, rt *poolRuntime, s routing.PoolStep, next config.Pool) error {
	rt.settings = next
	var errs []error
	if s.Changed("health") || s.Changed("breaker") || s.Changed("warmup") {
		errs = append(errs, rt.sched.SetRules(ctx, rulesOf(next)))
	}
	if s.Changed("health") {
		switch {
		case next.Health.Disabled && rt.health != nil:
			errs = append(errs, rt.health.Stop(ctx))
			rt.health = nil
		case !next.Health.Disabled && rt.health != nil:
			errs = append(errs, rt.health.Reconfigure(ctx, healthSettings(next.Health)))
		}
	}
	if s.Changed("outlier") {
		switch {
		case next.Outlier.Disabled && rt.outlier != nil:
			errs = append(errs, rt.outlier.Stop(ctx))
			rt.outlier = nil
		case !next.Outlier.Disabled && rt.outlier != nil:
			errs = append(errs, rt.outlier.Reconfigure(ctx, outlierRules(next.Outlier), next.Outlier.Interval.D()))
		}
	}
	errs = append(errs, o.startLoops(rt)) // the ones just turned on
	if s.Changed("retries") || s.Changed("max_inflight") {
		rt.data.SetSettings(dataSettings(next))
	}
	return errors.Join(errs...)
}

// routes builds the data plane's routing table over the running pools.
func (o *owner) routes(t *routing.Table) *proxy.Routes {
	pools := make(map[string]*proxy.Pool, len(o.pools))
	for name, rt := range o.pools {
		pools[name] = rt.data
	}
	return o.d.proxy.NewRoutes(t.Routes, pools)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
