package daemon

import (
	"context"
	"fmt"

	"github.com/lbd/lbd/actor"
	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/routing"
)

// What an operator's tools wait for and see of lbd's life: the start line,
// readiness (sd_notify's READY=1 in cmd/lbd), and the access log's reopen
// for logrotate.

// noBackendsWarning is logged at start when nothing can bring a backend in
// but an admin call: no backends, no discovery source, no fleet.
const noBackendsWarning = "no backends and no discovery: every request will be answered 503 no-backend until one is added (POST /admin/backends, or backends or discovery in the config file and SIGHUP)"

// logStart writes the one start line, with the numbers lbd runs with: the
// effective table (the file with the state file's admin changes laid over
// it), so a backend restored from the state counts; admin_added counts
// the backends that admin changes added (from the state file or the fleet).
func (d *Daemon) logStart(cfg *config.Config, s *servers) {
	t := d.owner.table()
	byPool := make(map[string]int, len(t.Pools))
	backends, adminAdded, draining := 0, 0, 0
	for _, p := range t.Pools {
		byPool[p.Name] = len(p.Backends)
		backends += len(p.Backends)
		for _, b := range p.Backends {
			if b.Source == routing.SourceAdmin {
				adminAdded++
			}
			if b.Draining {
				draining++
			}
		}
	}
	sources := len(wantedSources(cfg))
	d.log.Info("lbd started", "version", d.opts.Version, "listen", s.dataAddr(), "admin", s.adminAddr(),
		"pools", len(t.Pools), "routes", len(t.Routes), "backends", backends, "backends_by_pool", byPool,
		"admin_added", adminAdded, "draining", draining, "discovery_sources", sources, "fleet", cfg.Fleet != nil,
		"policy", t.Pools[0].Policy, "max_inflight", cfg.Admission.MaxInflight,
		"max_connections", d.connectionCap(cfg), "aimd", cfg.AIMD.Enabled,
		"health", !cfg.Health.Disabled, "tls", cfg.TLS.CertFile != "", "state_file", cfg.StateFile)
	if backends == 0 && sources == 0 && cfg.Fleet == nil {
		d.log.Warn(noBackendsWarning)
	}
}

// Ready is closed once lbd is ready for traffic: Start has opened the
// listeners and every pool it started with has finished its first round
// of health checks, whatever the results (a start with every backend down
// becomes ready too: /readyz then says 503, and that is the orchestrator's
// business). A pool without active checks is ready at once.
func (d *Daemon) Ready() <-chan struct{} { return d.ready }

// watchReady closes ready once the first rounds of the pools running now
// are over, and logs how many backends each pool has eligible then. The
// checkers close their round when they stop, so this ends with them.
func (d *Daemon) watchReady() {
	var rounds []<-chan struct{}
	pools := d.owner.view.Load().pools
	for _, rt := range pools {
		if rt.health != nil {
			rounds = append(rounds, rt.health.FirstRound())
		}
	}
	d.wg.Go(func() {
		for _, r := range rounds {
			<-r
		}
		eligible := map[string]int{}
		for name, rt := range pools {
			n := 0
			for _, h := range rt.sched.Picker().Backends() {
				if h.Snapshot().Eligible {
					n++
				}
			}
			eligible[name] = n
		}
		d.log.Info("lbd ready", "eligible_by_pool", eligible)
		close(d.ready)
	})
}

// reopenLogMsg asks the owner to open the access log's file again.
type reopenLogMsg struct{ reply chan<- error }

// ReopenLogs opens the access log's file again, for logrotate (SIGUSR1):
// lines buffered so far go to the old file, the next ones to the new. The
// routing owner does it, so it never runs during a reload that changes the
// access log. Without a file (standard output, or off) it does nothing.
func (d *Daemon) ReopenLogs(ctx context.Context) error {
	err, askErr := actor.Ask(ctx, d.owner.ref, func(r chan<- error) any { return reopenLogMsg{r} })
	if askErr != nil {
		return askErr
	}
	return err
}

func (o *owner) reopenLog(m reopenLogMsg) {
	file := o.d.accessLog.cfg.File
	err := o.d.accessLog.reopen()
	switch {
	case err != nil:
		o.d.log.Error("access log not reopened; still writing to the file it had", "file", file, ErrAttr(err))
		err = fmt.Errorf("access_log.file: %w", err)
	case file != "" && o.d.accessLog.log != nil:
		o.d.log.Info("access log reopened", "file", file)
	}
	m.reply <- err
}
