package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/lbd/lbd/actor"
	"github.com/lbd/lbd/admin"
	"github.com/lbd/lbd/backendactor"
	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/controller"
	"github.com/lbd/lbd/proxy"
	"github.com/lbd/lbd/scheduler"
)

// App is one running lbd: its actors, the data-plane and admin servers.
// main builds one; end-to-end tests build several.
type App struct {
	cfg      *config.Config
	log      *slog.Logger
	registry *actor.Registry
	prom     *prometheus.Registry
	sched    *scheduler.Scheduler
	proxy    *proxy.Handler
	admin    *admin.Server
	certs    *certStore // the data plane's certificate; nil without tls
	// admission and limiter (nil when aimd is disabled) are the data plane's
	// admission control; AdmissionStatus reads them.
	admission *proxy.Admission
	limiter   *controller.Limiter
	// dumper and advisory watch lbd (observe.go).
	dumper   *controller.Dumper
	advisory *controller.Advisory
	// health and outliers (nil when disabled) take failing backends out (failure.go).
	health   *controller.HealthChecker
	outliers *controller.OutlierDetector

	// live is the effective configuration (/debug/config): the file, with
	// the state file on top at start, replaced by each successful reload.
	// fileCfg is the file as last applied, which Reload diffs against and
	// the state file records; both are written under reloadMu; live also
	// under liveMu, as admin changes update it too.
	live      atomic.Pointer[config.Config]
	liveMu    sync.Mutex
	fileCfg   atomic.Pointer[config.Config]
	reloadMu  sync.Mutex
	reloaders []reloader
	reloads   *prometheus.CounterVec
	state     *stateWriter // nil without state_file

	dataLn, adminLn   net.Listener
	dataSrv, adminSrv *http.Server
	accessOut         io.Closer
	wg                sync.WaitGroup
}

// NewApp builds every actor and handler from cfg; Start opens the listeners.
func NewApp(cfg *config.Config, log *slog.Logger) (*App, error) {
	a := &App{cfg: cfg, log: log, registry: actor.NewRegistry(), prom: prometheus.NewRegistry()}
	a.fileCfg.Store(cfg)
	a.reloaders = []reloader{func(_, next *config.Config) error { return a.reloadTLS(next.TLS) }}
	a.prom.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lbd_config_reloads_total", Help: "Config file reloads (SIGHUP), by result (success or failure).",
	}, []string{"result"})
	a.reloads.WithLabelValues("success") // both series exist from the start, at 0
	a.reloads.WithLabelValues("failure")
	a.prom.MustRegister(a.reloads)
	token, err := adminToken(cfg, os.Getenv)
	if err != nil {
		return nil, err
	}
	eff := cfg
	var drained []string
	if cfg.StateFile != "" {
		r, err := restoreState(cfg.StateFile, cfg, time.Now())
		if err != nil {
			log.Error("state file not restored", "err", err)
		}
		if r != nil {
			eff, drained = r.cfg, r.drained
			log.Info("state restored on top of the config file", "state_file", cfg.StateFile,
				"backends", len(eff.Backends), "drained", len(drained), "policy", eff.Policy,
				"file_changes_since", r.fileChanges.String())
		}
	}
	a.live.Store(eff)

	if cfg.TLS.CertFile != "" {
		if a.certs, err = newCertStore(cfg.TLS, time.Now); err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
	}
	upTLS, err := upstreamTLS(cfg)
	if err != nil {
		return nil, err
	}

	sched, err := scheduler.New(scheduler.Config{
		Policy: eff.Policy, StickyEnabled: eff.Sticky.Enabled, StickyKey: eff.Sticky.Key,
		Backend:  backendTemplate(cfg),
		Registry: a.registry, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	a.sched = sched
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, b := range eff.Backends {
		u, err := config.NormalizeURL(b.URL)
		if err != nil {
			return nil, errors.Join(err, a.sched.Stop(ctx))
		}
		if _, err := sched.Add(ctx, scheduler.Spec{URL: u, Weight: b.Weight, MaxInflight: b.MaxInflight, Protocol: b.Protocol, Initial: true}); err != nil {
			return nil, errors.Join(err, a.sched.Stop(ctx))
		}
	}
	if eff.Canary.Backend != "" && eff.Canary.Percent > 0 {
		u, _ := config.NormalizeURL(eff.Canary.Backend)
		if err := sched.SetCanary(ctx, u, eff.Canary.Percent); err != nil {
			return nil, errors.Join(err, a.sched.Stop(ctx))
		}
	}
	for _, u := range drained {
		if h := sched.Lookup(u); h != nil {
			if err := h.Drain(ctx); err != nil {
				return nil, errors.Join(err, a.sched.Stop(ctx))
			}
		}
	}

	al, closer, err := accessLog(cfg.AccessLog)
	if err != nil {
		return nil, errors.Join(err, a.sched.Stop(ctx))
	}
	a.accessOut = closer
	clientIP, err := a.startAdmission(cfg)
	if err != nil {
		return nil, errors.Join(err, a.sched.Stop(ctx), closeIfAny(a.accessOut))
	}
	a.proxy = proxy.New(proxy.Options{
		Scheduler: sched,
		Admitter:  a.admission, ClientIP: clientIP, MaxBodyBytes: cfg.Admission.MaxBodyBytes,
		Transport: proxy.TransportOptions{
			DialTimeout: cfg.Timeouts.Dial.D(), ResponseHeaderTimeout: cfg.Timeouts.ResponseHeader.D(),
			IdleConnTimeout: cfg.Timeouts.IdleConn.D(), TLS: upTLS,
		},
		Upgrades: proxy.UpgradeOptions{DrainTimeout: cfg.WebSocket.DrainTimeout.D()},
		Retries: proxy.RetryOptions{
			Max: cfg.Retries.Max, BudgetPercent: cfg.Retries.BudgetPercent, MinConcurrent: 3,
			PerTryTimeout: cfg.Retries.PerTryTimeout.D(), BufferBodyBytes: cfg.Retries.BufferBodyBytes,
		},
		AccessLog:  al,
		Registerer: a.prom,
		Logger:     log,
	})
	a.prom.MustRegister(admin.NewCollector(sched, a.registry))
	if err := a.startObservers(); err != nil {
		errs := []error{err, a.sched.Stop(ctx), closeIfAny(a.accessOut)}
		if a.limiter != nil {
			errs = append(errs, a.limiter.Stop(ctx))
		}
		return nil, errors.Join(errs...)
	}
	if err := a.startFailureDetection(cfg, upTLS); err != nil {
		errs := []error{err, a.stopObservers(ctx), a.sched.Stop(ctx), closeIfAny(a.accessOut)}
		if a.limiter != nil {
			errs = append(errs, a.limiter.Stop(ctx))
		}
		return nil, errors.Join(errs...)
	}
	if cfg.StateFile != "" {
		a.state = startStateWriter(a.registry, a.prom, cfg.StateFile, sched, a.fileCfg.Load, log)
		// Written at once: the file now records what runs (a corrupt one set
		// aside is replaced) and the config file this start applied.
		if err := a.state.Persist(ctx); err != nil {
			log.Error("state file not written at start", "err", err)
		}
	}
	a.admin = admin.New(admin.Options{
		Scheduler: sched, Registry: a.registry, Gatherer: a.prom, Logger: log,
		Token: token, RemoveGrace: cfg.ShutdownGrace.D(), Changed: a.adminChanged,
		Config: a.Config, Checks: a.selftestChecks(),
		Traffic: a.trafficFigures, Admission: func() any { return a.AdmissionStatus() }, Advisory: a.advisoryReport,
	})
	a.admin.Handle(admin.OutliersPath, admin.OutliersHandler(a.outlierReport))
	return a, nil
}

// Config returns the effective configuration.
func (a *App) Config() *config.Config { return a.live.Load() }

func closeIfAny(c io.Closer) error {
	if c == nil {
		return nil
	}
	return c.Close()
}

// stopTimeout bounds stopping the actors after the servers are down.
const stopTimeout = 5 * time.Second

// backendTemplate turns config sections into the backend actors' rules.
func backendTemplate(cfg *config.Config) backendactor.Config {
	return backendactor.Config{
		Breaker: backendactor.BreakerConfig{
			FailureThreshold: cfg.Breaker.FailureThreshold, OpenFor: cfg.Breaker.OpenFor.D(),
			MaxOpenFor: cfg.Breaker.MaxOpenFor.D(), HalfOpenProbes: cfg.Breaker.HalfOpenProbes,
		},
		Rise: cfg.Health.Rise, Fall: cfg.Health.Fall,
		Warmup: cfg.Warmup.Duration.D(), WarmupMinPercent: cfg.Warmup.MinWeightPercent,
		// With active checks, a backend added at runtime waits for its first
		// good probe (backendactor.Health); the initial ones start healthy.
		StartUnhealthy: !cfg.Health.Disabled,
	}
}

func accessLog(c config.AccessLog) (*proxy.AccessLog, io.Closer, error) {
	if c.Mode == "off" {
		return nil, nil, nil
	}
	var w io.Writer = os.Stdout
	var file *os.File
	if c.File != "" {
		f, err := os.OpenFile(c.File, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			return nil, nil, fmt.Errorf("access_log.file: %w", err)
		}
		w, file = f, f
	}
	rate := 1.0
	if c.Mode == "sampled" {
		rate = c.SampleRate
	}
	al := proxy.NewAccessLog(w, rate)
	return al, closerFunc(func() error {
		err := al.Close() // the last batch first, then the file under it
		if file != nil {
			err = errors.Join(err, file.Close())
		}
		return err
	}), nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// Start opens both listeners and serves until Shutdown.
func (a *App) Start() error {
	var err error
	if a.adminLn, err = net.Listen("tcp", a.cfg.Admin.Listen); err != nil {
		return fmt.Errorf("admin listener %s: %w", a.cfg.Admin.Listen, err)
	}
	if a.dataLn, err = net.Listen("tcp", a.cfg.Listen); err != nil {
		a.adminLn.Close()
		return fmt.Errorf("listener %s: %w", a.cfg.Listen, err)
	}
	t := a.cfg.Timeouts
	errLog := slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)
	a.dataSrv = &http.Server{
		Handler: a.proxy, ReadHeaderTimeout: t.ClientReadHeader.D(), IdleTimeout: t.ClientIdle.D(),
		MaxHeaderBytes: t.MaxHeaderBytes, ErrorLog: errLog, Protocols: new(http.Protocols),
	}
	// One listener, one way in: HTTPS with ALPN (h2, http/1.1) when a
	// certificate is configured, else cleartext HTTP/1.1 plus, with h2c,
	// HTTP/2 by prior knowledge (Upgrade: h2c is not offered; see proxy/websocket.go).
	a.dataSrv.Protocols.SetHTTP1(true)
	if a.certs != nil {
		a.dataSrv.TLSConfig = a.certs.serverConfig()
		a.dataSrv.Protocols.SetHTTP2(true)
	} else if a.cfg.H2C {
		a.dataSrv.Protocols.SetUnencryptedHTTP2(true)
	}
	a.adminSrv = &http.Server{Handler: a.admin, ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog}
	a.serve(a.dataSrv, a.dataLn)
	a.serve(a.adminSrv, a.adminLn)
	a.log.Info("lbd started", "listen", a.dataLn.Addr().String(), "admin", a.adminLn.Addr().String(),
		"policy", a.cfg.Policy, "backends", len(a.cfg.Backends))
	return nil
}

func (a *App) serve(srv *http.Server, ln net.Listener) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		serve := srv.Serve
		if srv.TLSConfig != nil {
			serve = func(ln net.Listener) error { return srv.ServeTLS(ln, "", "") } // the certificate comes from TLSConfig
		}
		if err := serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
}

// DataAddr and AdminAddr return the bound addresses (useful with ":0").
func (a *App) DataAddr() string  { return a.dataLn.Addr().String() }
func (a *App) AdminAddr() string { return a.adminLn.Addr().String() }

// Shutdown stops accepting, lets in-flight requests finish until ctx ends,
// then stops every actor.
func (a *App) Shutdown(ctx context.Context) error {
	var errs []error
	if a.dataSrv != nil {
		// Upgraded connections (WebSocket) are invisible to http.Server.Shutdown:
		// the proxy drains them alongside, within the same grace.
		upgraded := make(chan int, 1)
		go func() { upgraded <- a.proxy.DrainUpgrades(ctx) }()
		err := a.dataSrv.Shutdown(ctx)
		if err != nil {
			a.dataSrv.Close() // the grace is over: cut what still runs (long gRPC streams)
		}
		errs = append(errs, err, a.adminSrv.Shutdown(ctx))
		if n := <-upgraded; n > 0 {
			a.log.Info("closed upgraded connections still open at the end of the grace", "count", n)
		}
	}
	a.wg.Wait()
	a.proxy.Close()
	stopCtx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	if a.state != nil { // before the scheduler: a write in hand asks it
		errs = append(errs, a.state.Stop(stopCtx))
	}
	errs = append(errs, a.stopObservers(stopCtx), a.stopFailureDetection(stopCtx), a.sched.Stop(stopCtx))
	if a.limiter != nil {
		errs = append(errs, a.limiter.Stop(stopCtx))
	}
	if a.accessOut != nil {
		errs = append(errs, a.accessOut.Close())
	}
	return errors.Join(errs...)
}
