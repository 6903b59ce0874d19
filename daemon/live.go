package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/controller"
	"github.com/lbd/lbd/routing"
)

// A reload changes the settings outside the routing table in two steps.
// prepareLive does everything that can fail and changes nothing: it
// checks the admin exposure, reads the token, the certificate and the CA
// files of backends the reload adds, checks the limiter's settings, opens
// a new access log file and binds new listeners. commit then hands each
// setting to what holds it:
//
//	listen, admin.listen, tls on/off, h2c,
//	timeouts.client_read_header, client_idle, max_header_bytes  new servers (servers.go)
//	tls.cert_file, tls.key_file       the certificate, from the next handshake
//	admin.token_file, LB_ADMIN_TOKEN  the admin API's token
//	admission.*                       the admission (caps, per-client buckets, trusted proxies)
//	aimd.*                            the limiter: started, reconfigured or stopped
//	timeouts.dial, response_header, idle_conn   new upstream transports
//	admission.max_body_bytes, max_header_count, max_uri_bytes,
//	timeouts.client_stall, access_log.*  the data plane, from its next request
//	admission.max_connections, timeouts.client_stall  the connection guard, at once
//	tracing.*, OTEL_*                 a new tracer provider, from the next request (tracing.go)
//	websocket.drain_timeout           open and new WebSockets
//	metrics_dump.*                    the dumper
//	state_file, shutdown_grace        read where they are used
//
// and the pools' own sections (health, breaker, outlier, warmup, retries,
// max_inflight) go through the routing plan (pools.go).
type liveChange struct {
	d          *Daemon
	prev, next *config.Config
	token      string
	cert       *tls.Certificate // the pair to serve, read again on every reload
	certs      *certStore       // where it goes: the running store, or a new one when HTTPS turns on
	log        *logChange
	tracing    *tracingChange
	servers    *swap
}

func (d *Daemon) prepareLive(prev, next *config.Config, plan *ReloadPlan) (_ *liveChange, err error) {
	c := &liveChange{d: d, prev: prev, next: next}
	defer func() {
		if err != nil {
			c.abort()
		}
	}()
	var errs []error
	if err := checkAdminExposure(next, d.opts.Getenv); err != nil {
		errs = append(errs, err)
	}
	if c.token, err = adminToken(next, d.opts.Getenv); err != nil {
		errs = append(errs, err)
	}
	if next.TLS.CertFile != "" {
		if c.cert, err = loadKeyPair(next.TLS.CertFile, next.TLS.KeyFile, time.Now()); err != nil {
			errs = append(errs, fmt.Errorf("tls: %w", err))
		}
		c.certs = d.certs
		if c.certs == nil {
			c.certs = &certStore{now: time.Now}
		}
	}
	for _, s := range plan.Routing.Backends {
		if s.Action == routing.Added || s.Action == routing.Replaced {
			if _, err := upstreamTLS(s.New); err != nil {
				errs = append(errs, fmt.Errorf("pool %s backend %s: %w", s.Pool, s.URL, err))
			}
		}
	}
	if next.AIMD.Enabled {
		if err := controller.LimiterConfigFor(next.AIMD, d.log).Validate(); err != nil {
			errs = append(errs, fmt.Errorf("aimd: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if c.log, err = d.accessLog.prepare(next.AccessLog); err != nil {
		return nil, err
	}
	if c.tracing, err = d.tracing.prepare(next.Tracing); err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	if c.cert != nil && c.certs.cur.Load() == nil {
		c.certs.cur.Store(c.cert) // a store no server uses yet: the new servers need its pair
	}
	if c.servers, err = d.servers.prepare(next, c.certs); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *liveChange) abort() {
	if c.log != nil {
		c.log.abort()
	}
	if c.tracing != nil {
		c.tracing.abort()
	}
	if c.servers != nil {
		c.servers.abort()
	}
}

// commit applies every setting; it cannot be refused any more, and a
// subsystem that fails to take its part is logged and reported.
func (c *liveChange) commit() error {
	d, next := c.d, c.next
	var errs []error
	if c.cert != nil {
		c.certs.cur.Store(c.cert)
		d.certs = c.certs
		leaf := c.cert.Leaf
		d.log.Info("tls certificate loaded", "cert_file", next.TLS.CertFile, "subject", certName(leaf),
			"not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	c.servers.commit(next.ShutdownGrace.D())
	d.admin.SetToken(c.token)
	if err := d.clientIPs.Set(next.Admission.TrustedProxies); err != nil {
		errs = append(errs, fmt.Errorf("admission.trusted_proxies: %w", err))
	}
	retire, err := d.limiter.set(d, next.AIMD)
	if err != nil {
		errs = append(errs, fmt.Errorf("aimd: %w", err))
	}
	if err := d.admission.Reconfigure(admissionOptions(next, d)); err != nil {
		errs = append(errs, fmt.Errorf("admission: %w", err))
	}
	if err := retire(); err != nil {
		errs = append(errs, fmt.Errorf("aimd: stopping the limiter: %w", err))
	}
	if t := transportOptions(next); t != transportOptions(c.prev) {
		d.proxy.SetTransport(t)
	}
	d.proxy.SetUpgradeDrainTimeout(next.WebSocket.DrainTimeout.D())
	log, err := c.log.commit()
	if err != nil {
		errs = append(errs, fmt.Errorf("access_log: %w", err))
	}
	d.proxy.SetLive(proxyLive(next, log, c.tracing.commit()))
	d.conns.Set(d.connectionCap(next), next.Timeouts.ClientStall.D())
	md := next.MetricsDump
	ctx, cancel := context.WithTimeout(context.Background(), askTimeout)
	defer cancel()
	if err := d.dumper.Reconfigure(ctx, md.Dir, md.Interval.D(), md.Keep); err != nil {
		errs = append(errs, fmt.Errorf("metrics_dump: %w", err))
	}
	return errors.Join(errs...)
}
