package main

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/scheduler"
)

// Reload (SIGHUP) applies the difference between the config file as last
// applied and next through the owning actors: added backends start and warm
// up, removed ones drain then stop, weight and cap changes go to the backend
// actors, policy, sticky and canary to the scheduler, and the certificate is
// reloaded. Settings that only take effect at start (listeners, admission,
// timeouts, ...) are logged as needing a restart. Admin changes to things
// the file did not change survive a reload.
//
// The reloaders (the certificate) run first, so a broken certificate
// changes nothing. next must already carry flags and environment (main's
// loadConfig). Tests call Reload directly; SIGHUP calls it through reloadFile.
func (a *App) Reload(next *config.Config) error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	err := a.reload(next)
	a.countReload(err)
	return err
}

// countReload counts one reload attempt in lbd_config_reloads_total.
func (a *App) countReload(err error) {
	result := "success"
	if err != nil {
		result = "failure"
	}
	a.reloads.WithLabelValues(result).Inc()
}

// reloadTimeout bounds the asks of one reload.
const reloadTimeout = 10 * time.Second

// reloader is a subsystem's part of a reload, run before any routing
// change: it checks next and switches to it, or returns an error and keeps
// what it runs, which refuses the whole reload. Checks that can fail go
// first (a broken certificate must change nothing). NewApp registers them:
// the TLS certificate (tls.go) is one. Its errors name the subsystem.
type reloader func(prev, next *config.Config) error

func (a *App) reload(next *config.Config) error {
	if err := next.Validate(); err != nil {
		return err
	}
	prev := a.fileCfg.Load()
	for _, r := range a.reloaders {
		if err := r(prev, next); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), reloadTimeout)
	defer cancel()
	d := diffFile(routingOf(prev), routingOf(next))
	errs := a.applyFileDiff(ctx, d, next.ShutdownGrace.D())
	for _, f := range restartOnly(prev, next) {
		a.log.Warn("config reload: setting changed but needs a restart to take effect", "setting", f)
	}
	a.fileCfg.Store(next)
	a.liveMu.Lock()
	a.live.Store(next)
	a.liveMu.Unlock()
	if err := a.adminChanged(ctx); err != nil {
		a.log.Error("config reloaded but the state file was not written", "err", err)
	}
	a.log.Info("config reload applied", "changes", d.String())
	return errors.Join(errs...)
}

// applyFileDiff sends the file's routing changes to their owners: the set,
// policy, sticky and canary to the scheduler, weights and caps to the
// backends' actors. Removed backends drain for up to grace, so no request in
// flight is cut.
func (a *App) applyFileDiff(ctx context.Context, d fileDiff, grace time.Duration) []error {
	var errs []error
	for _, u := range d.Removed {
		if err := a.sched.Remove(ctx, u, grace); err != nil && !errors.Is(err, scheduler.ErrNotFound) {
			errs = append(errs, fmt.Errorf("removing backend %s: %w", u, err))
		}
	}
	for _, b := range d.Added {
		_, err := a.sched.Add(ctx, scheduler.Spec{URL: b.URL, Weight: b.Weight, MaxInflight: b.MaxInflight, Protocol: b.Protocol})
		switch {
		case errors.Is(err, scheduler.ErrExists): // the admin API added it already: align it with the file
			if h := a.sched.Lookup(b.URL); h != nil {
				s := h.Snapshot()
				running := config.Backend{URL: b.URL, Weight: s.Weight, MaxInflight: int(s.MaxInflight),
					Protocol: h.Protocol(), CAFile: b.CAFile, ServerName: b.ServerName}
				errs = append(errs, a.alignBackend(ctx, backendChange{Old: running, New: b})...)
			}
		case err != nil:
			errs = append(errs, fmt.Errorf("adding backend %s: %w", b.URL, err))
		}
	}
	for _, c := range d.Changed {
		errs = append(errs, a.alignBackend(ctx, c)...)
	}
	if p := d.Policy; p != nil {
		if err := a.sched.SetPolicy(ctx, p.Policy, p.Sticky.Enabled, p.Sticky.Key); err != nil {
			errs = append(errs, fmt.Errorf("policy: %w", err))
		}
	}
	if c := d.Canary; c != nil {
		if err := a.sched.SetCanary(ctx, c.Backend, c.Percent); err != nil {
			errs = append(errs, fmt.Errorf("canary: %w", err))
		}
	}
	return errs
}

// adminChanged follows a change made through the admin API or a reload:
// the effective configuration (/debug/config) takes the running backends,
// policy, sticky and canary, and the state file, if any, is rewritten
// before the caller answers.
func (a *App) adminChanged(ctx context.Context) error {
	a.liveMu.Lock() // held across the read, so the last change is the one that stays
	st, err := currentState(ctx, a.sched, nil)
	if err == nil {
		eff, _ := overlay(a.Config(), st)
		a.live.Store(eff)
	}
	a.liveMu.Unlock()
	if err != nil {
		return fmt.Errorf("reading the running settings: %w", err)
	}
	if a.state == nil {
		return nil
	}
	return a.state.Persist(ctx)
}

// alignBackend sends c's new weight and cap to the backend's actor where
// they changed. A backend the admin API removed stays removed: the file
// changed an entry lbd no longer runs, which is logged, not an error.
func (a *App) alignBackend(ctx context.Context, c backendChange) []error {
	u := c.New.URL
	h := a.sched.Lookup(u)
	if h == nil {
		a.log.Info("config reload: backend changed in the file but removed through the admin API; not re-added", "backend", u)
		return nil
	}
	var errs []error
	if c.weight() {
		if err := h.SetWeight(ctx, c.New.Weight); err != nil {
			errs = append(errs, fmt.Errorf("backend %s weight: %w", u, err))
		}
	}
	if c.cap() {
		if err := h.SetCap(ctx, c.New.MaxInflight); err != nil {
			errs = append(errs, fmt.Errorf("backend %s max_inflight: %w", u, err))
		}
	}
	if c.transport() {
		a.log.Warn("config reload: backend transport settings changed; remove and add the backend (or restart) to apply", "backend", u)
	}
	return errs
}

// restartOnly names the top-level settings that differ between a and b and
// that Reload does not apply.
func restartOnly(a, b *config.Config) []string {
	va, vb := reflect.ValueOf(*a), reflect.ValueOf(*b)
	var out []string
	for i := range va.NumField() {
		name, _, _ := strings.Cut(va.Type().Field(i).Tag.Get("json"), ",")
		switch name {
		case "backends", "policy", "sticky", "canary", "tls": // Reload applies these
			continue
		}
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			out = append(out, name)
		}
	}
	return out
}
