package daemon

import (
	"context"
	"sync"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/controller"
	"github.com/lbd/lbd/proxy"
)

// startDataPlane builds the data plane from the admission, aimd, retries,
// timeouts, websocket and access_log sections: the client-IP rules, the
// adaptive limiter's actor (when enabled), the per-client buckets and the
// hard cap, the access log and the proxy handler. The pools and routes are
// installed by the owner.
func (d *Daemon) startDataPlane(cfg *config.Config) error {
	ips, err := proxy.NewClientIPs(cfg.Admission.TrustedProxies)
	if err != nil {
		return err
	}
	d.clientIPs = ips
	d.conns = proxy.NewConnGuard(d.prom)
	d.conns.Set(d.connectionCap(cfg), cfg.Timeouts.ClientStall.D())
	d.limiter = &limiterSlot{}
	if _, err := d.limiter.set(d, cfg.AIMD); err != nil {
		return err
	}
	d.closers.push("adaptive limiter", d.limiter.stop)
	d.admission = proxy.NewAdmission(admissionOptions(cfg, d))
	if d.accessLog, err = openAccessLog(cfg.AccessLog); err != nil {
		return err
	}
	d.closers.push("access log", d.accessLog.close)
	d.tracing = newTracingSlot(d)
	tc, err := d.tracing.prepare(cfg.Tracing)
	if err != nil {
		return err
	}
	d.closers.push("tracing", d.tracing.close)
	d.proxy = proxy.New(proxy.Options{
		Admitter: d.admission, ClientIP: d.clientIPs.ClientIP, Live: proxyLive(cfg, d.accessLog.log, tc.commit()),
		Transport:  transportOptions(cfg),
		Upgrades:   proxy.UpgradeOptions{DrainTimeout: cfg.WebSocket.DrainTimeout.D()},
		Registerer: d.prom, Logger: d.log,
	})
	return nil
}

// admissionOptions are the admission's settings from cfg, with the soft
// limit that runs now.
func admissionOptions(cfg *config.Config, d *Daemon) proxy.AdmissionOptions {
	a := cfg.Admission
	o := proxy.AdmissionOptions{
		MaxInflight: a.MaxInflight, RatePerClient: a.RatePerClient, BurstPerClient: a.BurstPerClient,
		MaxClients: a.MaxClients, ClientIdle: a.ClientIdle.D(), Registerer: d.prom,
	}
	if l := d.limiter.get(); l != nil { // never a typed nil in the interface
		o.Limit = l
	}
	return o
}

func transportOptions(cfg *config.Config) proxy.TransportOptions {
	t := cfg.Timeouts
	return proxy.TransportOptions{DialTimeout: t.Dial.D(), ResponseHeaderTimeout: t.ResponseHeader.D(), IdleConnTimeout: t.IdleConn.D()}
}

// limiterSlot holds the adaptive limiter while it runs: aimd.enabled
// starts and stops its actor on a reload, and the admission is then
// handed the new one (or none).
type limiterSlot struct {
	mu  sync.Mutex
	cur *controller.Limiter
}

// set makes the limiter match m: started, reconfigured or taken out. A
// limiter taken out must keep running until the admission stops using it:
// the caller runs retire after reconfiguring the admission.
func (s *limiterSlot) set(d *Daemon, m config.AIMD) (retire func() error, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	retire = func() error { return nil }
	switch {
	case !m.Enabled && s.cur != nil:
		old := s.cur
		s.cur = nil
		retire = func() error {
			ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
			defer cancel()
			return old.Stop(ctx)
		}
	case m.Enabled && s.cur != nil:
		ctx, cancel := context.WithTimeout(context.Background(), askTimeout)
		defer cancel()
		err = s.cur.Reconfigure(ctx, controller.LimiterConfigFor(m, d.log))
	case m.Enabled:
		s.cur, err = controller.NewLimiter(d.registry, controller.LimiterConfigFor(m, d.log))
	}
	return retire, err
}

func (s *limiterSlot) get() *controller.Limiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

func (s *limiterSlot) stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return nil
	}
	return s.cur.Stop(ctx)
}

// AdmissionState is the admission control's state for /admin/metrics/json:
// the admission's counters and, when the adaptive limit runs, its
// controller's last decision.
type AdmissionState struct {
	Admission proxy.AdmissionStatus `json:"admission"`
	AIMD      *controller.Status    `json:"aimd,omitempty"`
}

// AdmissionStatus returns the admission control's current state.
func (d *Daemon) AdmissionStatus() AdmissionState {
	s := AdmissionState{Admission: d.admission.Status()}
	if l := d.limiter.get(); l != nil {
		st := l.Status()
		s.AIMD = &st
	}
	return s
}

func proxyLive(cfg *config.Config, log *proxy.AccessLog, t *proxy.Tracing) proxy.Live {
	a := cfg.Admission
	return proxy.Live{MaxBodyBytes: a.MaxBodyBytes, ClientStall: cfg.Timeouts.ClientStall.D(),
		MaxHeaderCount: a.MaxHeaderCount, MaxURIBytes: a.MaxURIBytes, AccessLog: log, Tracing: t}
}

// connectionCap is admission.max_connections as the file descriptor limit
// lets lbd serve it; lowering it is logged once per setting.
func (d *Daemon) connectionCap(cfg *config.Config) int {
	n, lowered := connectionCap(cfg.Admission.MaxConnections, d.opts.FDLimit())
	if lowered && d.conns != nil && d.conns.Limit() != int64(n) {
		d.log.Warn("admission.max_connections lowered to what the file descriptor limit serves",
			"max_connections", cfg.Admission.MaxConnections, "effective", n, "fd_limit", d.opts.FDLimit(),
			"reserve", fdReserve)
	}
	return n
}
