// Package daemon is lbd's composition root: New builds every actor and
// handler of one running lbd from a config, Start opens the listeners, and
// Shutdown drains and stops them in the reverse order of their start.
//
// Its heart is the routing-config owner (owner.go), the one actor that owns
// the config file as applied, the admin changes (routing.Overlay), what
// discovery found, the effective routing table and the state file. Reloads
// (SIGHUP, POST /admin/reload), admin changes and discovery updates are
// messages in its mailbox, so they are serialised and never undo each
// other; it carries each one out by commanding the pools' schedulers and
// backend actors and the other subsystems, writes the state once, and
// answers.
//
// Who talks to it: cmd/lbd (New, Start, Shutdown, Reload on SIGHUP), the
// admin API (through the admin.Control it implements), and tests, which run
// several daemons in one process.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/lbd/lbd/actor"
	"github.com/lbd/lbd/admin"
	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/controller"
	"github.com/lbd/lbd/discovery"
	"github.com/lbd/lbd/events"
	"github.com/lbd/lbd/fleet"
	"github.com/lbd/lbd/proxy"
	"github.com/lbd/lbd/routing"
	"github.com/lbd/lbd/scheduler"
)

// Options configure New.
type Options struct {
	// Config is the configuration to run: the file with flags and
	// environment applied, validated.
	Config *config.Config
	// Load reads the configuration again for a reload (the file, with
	// flags and environment applied); nil makes Reload without a config an
	// error. cmd/lbd passes its loader.
	Load   func() (*config.Config, error)
	Logger *slog.Logger
	// Getenv reads the environment (LB_ADMIN_TOKEN); nil is os.Getenv.
	Getenv func(string) string
	// Version is shown in the start line and /admin/fleet.
	Version string
	// FDLimit returns the process's file descriptor limit (0: unlimited),
	// which caps admission.max_connections (fds.go); nil reads and raises
	// RLIMIT_NOFILE.
	FDLimit func() uint64
}

// Daemon is one running lbd.
type Daemon struct {
	opts     Options
	log      *slog.Logger
	registry *actor.Registry
	prom     *prometheus.Registry

	proxy     *proxy.Handler
	admission *proxy.Admission
	clientIPs *proxy.ClientIPs
	conns     *proxy.ConnGuard
	accessLog *accessLogs
	tracing   *tracingSlot
	limiter   *limiterSlot
	dumper    *controller.Dumper
	advisory  *controller.Advisory
	events    *events.Log
	admin     *admin.Server
	certs     *certStore // nil without tls
	reloads   *prometheus.CounterVec
	stateW    *prometheus.CounterVec

	discoveryMetrics *discovery.Metrics
	fleet            atomic.Pointer[fleet.Link] // nil unless fleet mode is on and the link started

	owner   *owner
	servers *servers
	started atomic.Pointer[servers] // servers, for other goroutines once Start has set it
	closers closers
	wg      sync.WaitGroup // background work the daemon owns (pools stopping, the readiness watch)
	ready   chan struct{}  // closed once Start is done and the first health round is over
}

// New builds every actor and handler from o.Config; Start opens the
// listeners. On an error everything already started is stopped again.
func New(o Options) (_ *Daemon, err error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.FDLimit == nil {
		o.FDLimit = fdLimit
	}
	cfg := o.Config
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Daemon{opts: o, log: o.Logger, registry: actor.NewRegistry(), prom: prometheus.NewRegistry(),
		ready: make(chan struct{})}
	defer func() {
		if err != nil {
			ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
			defer cancel()
			err = errors.Join(err, d.closers.close(ctx))
		}
	}()
	d.prom.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d.registerCounters()
	if err := checkAdminExposure(cfg, o.Getenv); err != nil {
		return nil, err
	}
	token, err := adminToken(cfg, o.Getenv)
	if err != nil {
		return nil, err
	}
	if cfg.TLS.CertFile != "" {
		if d.certs, err = newCertStore(cfg.TLS, time.Now); err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
	}
	if err := d.startDataPlane(cfg); err != nil {
		return nil, err
	}
	if err := d.startObservers(cfg); err != nil {
		return nil, err
	}
	// The events actor outlives the pools, whose backends report to it to the end.
	d.events = events.New(events.Options{Registry: d.registry, Logger: d.log})
	d.closers.push("events", d.events.Stop)
	if d.discoveryMetrics, err = discovery.NewMetrics(d.prom); err != nil {
		return nil, err
	}
	if d.owner, err = startOwner(d, cfg); err != nil {
		return nil, err
	}
	d.closers.push("routing owner", d.owner.stop)
	d.admin = admin.New(admin.Options{
		Control: d, Registry: d.registry, Gatherer: d.prom, Logger: d.log,
		Token: token, Config: d.owner.effectiveConfig, Checks: d.selftestChecks(),
		Traffic: d.trafficFigures, Admission: func() any { return d.AdmissionStatus() }, Advisory: d.advisoryReport,
		Outliers: d.owner.outlierReport, Discovery: d.owner.discoveryStatus, Fleet: d.fleetStatus,
		Tap: d.proxy.Tap(), Events: d.events,
	})
	d.prom.MustRegister(admin.NewCollector(d, d.registry))
	return d, nil
}

// stopTimeout bounds stopping the actors after the servers are down.
const stopTimeout = 5 * time.Second

func (d *Daemon) registerCounters() {
	d.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lbd_config_reloads_total", Help: "Config reloads (SIGHUP or POST /admin/reload), by result (success or failure).",
	}, []string{"result"})
	d.stateW = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lbd_state_file_writes_total",
		Help: "Writes of the state file after admin changes and reloads, by result (success or failure).",
	}, []string{"result"})
	for _, r := range []string{"success", "failure"} { // both series exist from the start, at 0
		d.reloads.WithLabelValues(r)
		d.stateW.WithLabelValues(r)
	}
	d.prom.MustRegister(d.reloads, d.stateW)
}

// Start opens both listeners and serves until Shutdown.
func (d *Daemon) Start() error {
	cfg := d.owner.fileConfig()
	s, err := startServers(d, cfg)
	if err != nil {
		return err
	}
	d.servers = s
	d.started.Store(s)
	if err := d.startFleet(); err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	d.logStart(cfg, s)
	d.watchReady()
	return nil
}

// DataAddr and AdminAddr return the bound addresses (useful with ":0").
func (d *Daemon) DataAddr() string  { return d.servers.dataAddr() }
func (d *Daemon) AdminAddr() string { return d.servers.adminAddr() }

// Shutdown stops accepting, lets in-flight requests finish until ctx ends,
// then stops every actor, flushes the access log and says so: "stopped"
// is the last line, written after the access log's last one.
func (d *Daemon) Shutdown(ctx context.Context) error {
	var errs []error
	// The admin API's streams (tap, events follow) run until their client
	// leaves: end them, or the admin server's shutdown would wait for them.
	d.admin.EndStreams()
	if d.servers != nil {
		errs = append(errs, d.servers.shutdown(ctx, d.proxy, d.log))
	}
	d.proxy.Close()
	stopCtx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	errs = append(errs, d.closers.close(stopCtx))
	d.wg.Wait()
	if err := errors.Join(errs...); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		d.log.Error("stopped with errors", ErrAttr(err))
		return err
	}
	d.log.Info("stopped")
	return nil
}

// closers is the stack of what New started, stopped in reverse order.
type closers struct {
	mu    sync.Mutex
	stack []namedCloser
}

type namedCloser struct {
	name string
	fn   func(context.Context) error
}

func (c *closers) push(name string, fn func(context.Context) error) {
	c.mu.Lock()
	c.stack = append(c.stack, namedCloser{name, fn})
	c.mu.Unlock()
}

// close runs every closer, last first, once; errors name their closer.
func (c *closers) close(ctx context.Context) error {
	c.mu.Lock()
	stack := slices.Clone(c.stack)
	c.stack = nil
	c.mu.Unlock()
	var errs []error
	for _, nc := range slices.Backward(stack) {
		if err := nc.fn(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stopping %s: %w", nc.name, err))
		}
	}
	return errors.Join(errs...)
}

// Reload re-reads the configuration with Options.Load and applies it; see
// ReloadConfig.
func (d *Daemon) Reload(ctx context.Context, dryRun bool) (*ReloadPlan, error) {
	if d.opts.Load == nil {
		return nil, errors.New("reload: this lbd has no config file to read again")
	}
	next, err := d.opts.Load()
	if err != nil {
		d.countReload(err)
		return nil, err
	}
	return d.ReloadConfig(ctx, next, dryRun)
}

// ReloadConfig applies next as a reload does: every setting live, the
// actors of unchanged backends kept, admin changes to what the file left
// alone kept. A setting that cannot change while lbd runs refuses the whole
// reload by name, as does any problem, and then nothing changes. With
// dryRun the plan is returned and nothing applied.
func (d *Daemon) ReloadConfig(ctx context.Context, next *config.Config, dryRun bool) (*ReloadPlan, error) {
	plan, err := d.owner.reload(ctx, next, dryRun)
	if !dryRun {
		d.countReload(err)
	}
	return plan, err
}

func (d *Daemon) countReload(err error) {
	result := "success"
	if err != nil {
		result = "failure"
	}
	d.reloads.WithLabelValues(result).Inc()
}

// Registry returns the registry of the daemon's actors (/debug/actors).
func (d *Daemon) Registry() *actor.Registry { return d.registry }

// Table returns the routing table lbd runs.
func (d *Daemon) Table() *routing.Table { return d.owner.table() }

// Scheduler returns the named pool's scheduler.
func (d *Daemon) Scheduler(pool string) (*scheduler.Scheduler, bool) {
	rt, ok := d.owner.pool(pool)
	if !ok {
		return nil, false
	}
	return rt.sched, true
}

// ReloadFile is POST /admin/reload (see Reload).
func (d *Daemon) ReloadFile(ctx context.Context, dryRun bool) (any, error) {
	plan, err := d.Reload(ctx, dryRun)
	if err != nil {
		return nil, err
	}
	return plan, nil
}

// Apply makes an admin change (see admin.Control).
func (d *Daemon) Apply(ctx context.Context, c routing.Change) error { return d.owner.Apply(ctx, c) }

// Config returns the effective configuration (/debug/config).
func (d *Daemon) Config() *config.Config { return d.owner.effectiveConfig() }
