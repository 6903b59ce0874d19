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
// The certificate is checked first, so a broken one changes nothing. next
// must already carry flags and environment (main's loadConfig).
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

func (a *App) reload(next *config.Config) error {
	if err := next.Validate(); err != nil {
		return err
	}
	if err := a.reloadTLS(next.TLS); err != nil {
		return err
	}
	prev := a.fileCfg
	ctx, cancel := context.WithTimeout(context.Background(), reloadTimeout)
	defer cancel()
	var errs []error
	old, cur := byURL(prev.Backends), byURL(next.Backends)
	for u := range old {
		if _, ok := cur[u]; ok {
			continue
		}
		if err := a.sched.Remove(ctx, u, next.ShutdownGrace.D()); err != nil && !errors.Is(err, scheduler.ErrNotFound) {
			errs = append(errs, fmt.Errorf("removing backend %s: %w", u, err))
		}
	}
	for _, nb := range next.Backends { // in file order
		u, _ := config.NormalizeURL(nb.URL)
		ob, had := old[u]
		if !had {
			_, err := a.sched.Add(ctx, scheduler.Spec{URL: u, Weight: nb.Weight, MaxInflight: nb.MaxInflight, Protocol: nb.Protocol})
			if err == nil || !errors.Is(err, scheduler.ErrExists) { // an admin added it already: align it below
				if err != nil {
					errs = append(errs, fmt.Errorf("adding backend %s: %w", u, err))
				}
				continue
			}
			ob = config.Backend{} // every setting differs from nothing
		}
		errs = append(errs, a.alignBackend(ctx, u, ob, nb)...)
	}
	if prev.Policy != next.Policy || prev.Sticky != next.Sticky {
		if err := a.sched.SetPolicy(ctx, next.Policy, next.Sticky.Enabled, next.Sticky.Key); err != nil {
			errs = append(errs, fmt.Errorf("policy: %w", err))
		}
	}
	if prev.Canary != next.Canary {
		u := ""
		if next.Canary.Backend != "" && next.Canary.Percent > 0 {
			u, _ = config.NormalizeURL(next.Canary.Backend)
		}
		if err := a.sched.SetCanary(ctx, u, next.Canary.Percent); err != nil {
			errs = append(errs, fmt.Errorf("canary: %w", err))
		}
	}
	for _, f := range restartOnly(prev, next) {
		a.log.Warn("config reload: setting changed but needs a restart to take effect", "setting", f)
	}
	a.fileCfg = next
	a.liveMu.Lock()
	a.live.Store(next)
	a.liveMu.Unlock()
	if err := a.adminChanged(ctx); err != nil {
		a.log.Error("config reloaded but the state file was not written", "err", err)
	}
	return errors.Join(errs...)
}

// adminChanged follows a change made through the admin API or a reload:
// the effective configuration (/debug/config) takes the running backends,
// policy, sticky and canary, and the state file, if any, is rewritten
// before the caller answers.
func (a *App) adminChanged(ctx context.Context) error {
	a.liveMu.Lock() // held across the read, so the last change is the one that stays
	st, err := currentState(ctx, a.sched)
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

// alignBackend sends the weight and cap of nb to the backend's actor where they differ from ob.
func (a *App) alignBackend(ctx context.Context, u string, ob, nb config.Backend) []error {
	h := a.sched.Lookup(u)
	if h == nil {
		return []error{fmt.Errorf("backend %s: %w", u, scheduler.ErrNotFound)}
	}
	var errs []error
	if ob.Weight != nb.Weight {
		if err := h.SetWeight(ctx, nb.Weight); err != nil {
			errs = append(errs, fmt.Errorf("backend %s weight: %w", u, err))
		}
	}
	if ob.MaxInflight != nb.MaxInflight {
		if err := h.SetCap(ctx, nb.MaxInflight); err != nil {
			errs = append(errs, fmt.Errorf("backend %s max_inflight: %w", u, err))
		}
	}
	if ob.URL != "" && (ob.Protocol != nb.Protocol || ob.CAFile != nb.CAFile || ob.ServerName != nb.ServerName) {
		a.log.Warn("config reload: backend transport settings changed; remove and add the backend (or restart) to apply", "backend", u)
	}
	return errs
}

func byURL(bs []config.Backend) map[string]config.Backend {
	m := make(map[string]config.Backend, len(bs))
	for _, b := range bs {
		if u, err := config.NormalizeURL(b.URL); err == nil {
			m[u] = b
		}
	}
	return m
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
