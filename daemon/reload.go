package daemon

import (
	"context"
	"errors"
	"reflect"

	"github.com/lbd/lbd/actor"
	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/routing"
)

// ReloadPlan is what a reload changes: POST /admin/reload's answer (and,
// with dry_run, all it does). Settings lists every setting of the file that
// changed, by JSON path; Routing says what happens to each pool and
// backend, with the backends that keep their actors and state counted.
type ReloadPlan struct {
	DryRun   bool                   `json:"dry_run"`
	Settings []config.SettingChange `json:"settings"`
	Routing  routing.Plan           `json:"routing"`
}

// reload asks the owner to apply next (see Daemon.ReloadConfig).
func (o *owner) reload(ctx context.Context, next *config.Config, dryRun bool) (*ReloadPlan, error) {
	r, err := actor.Ask(ctx, o.ref, func(c chan<- reloadResult) any { return reloadMsg{next, dryRun, c} })
	if err != nil {
		return nil, err
	}
	return r.plan, r.err
}

// doReload is the owner's part of a reload. Every setting applies live.
// Everything that can fail — validation, reading the certificate,
// the token and the CA files, opening the access log, binding new
// listeners — is done before anything changes, so a refused reload leaves
// lbd exactly as it was. Then every setting is applied to the subsystem
// that holds it and the routing plan is carried out.
func (o *owner) doReload(next *config.Config, dryRun bool) (*ReloadPlan, error) {
	if err := next.Validate(); err != nil {
		return nil, err
	}
	prev := o.file
	if !reflect.DeepEqual(prev.Fleet, next.Fleet) {
		return nil, errors.New("reload refused: fleet cannot change while lbd runs (the link, the replica's name and the store are shared with other replicas); restart lbd to change it")
	}
	ov := routing.Rebase(o.ov, routing.FileOf(prev), routing.FileOf(next))
	if o.d.fleet.Load() != nil {
		ov = o.ov // the fleet's changes are the fleet's: a file edit of one replica does not undo them (fleet.go)
	}
	disc := keepDiscovered(o.disc, next)
	table := routing.Effective(next, ov, disc)
	listens := []string{next.Listen}
	if next.Listen == prev.Listen {
		listens = o.d.dataListens(next.Listen)
	}
	if err := refuseSelf(table, listens); err != nil {
		return nil, err
	}
	plan := &ReloadPlan{DryRun: dryRun, Settings: config.Diff(prev, next), Routing: routing.Diff(o.cur, table)}
	if plan.Settings == nil {
		plan.Settings = []config.SettingChange{}
	}
	live, err := o.d.prepareLive(prev, next, plan)
	if err != nil {
		return nil, err
	}
	if dryRun {
		live.abort()
		return plan, nil
	}
	lerr := live.commit()
	ctx, cancel := context.WithTimeout(context.Background(), askTimeout)
	defer cancel()
	err = errors.Join(lerr, o.carryOut(ctx, plan.Routing, table, whyReload))
	o.file, o.ov, o.disc, o.cur = next, ov, disc, table
	err = errors.Join(err, o.syncSources(ctx, next))
	o.publish()
	o.dirty = true
	if werr := o.writeState(); werr != nil {
		o.d.log.Error("config reloaded but the state file was not written", "err", werr)
	}
	o.logReload(plan, err)
	return plan, err
}

func (o *owner) logReload(plan *ReloadPlan, err error) {
	var settings []string
	for _, s := range plan.Settings {
		settings = append(settings, s.Path)
	}
	r := plan.Routing
	args := []any{"settings", settings, "pools_added", r.PoolsAdded, "pools_removed", r.PoolsRemoved,
		"backends_changed", len(r.Backends), "backends_kept", r.Kept}
	if err != nil {
		o.d.log.Error("config reload applied with errors", append(args, ErrAttr(err))...)
		return
	}
	o.d.log.Info("config reloaded", args...)
}
