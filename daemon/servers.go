package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/proxy"
)

// servers are the data-plane and admin HTTP servers. A reload that changes
// what a server is built from (its address, TLS on or off, h2c, the client
// timeouts and header limit, which net/http reads from the server on every
// connection) replaces the server rather than mutating it: the new one is
// bound first, next to the old one — on the same address thanks to
// SO_REUSEPORT, which every lbd listener sets — so a bind failure refuses
// the reload with the old server untouched; then the old one stops
// accepting and finishes its requests within shutdown_grace, and its open
// WebSockets keep running (hijacked connections are not the server's).
type servers struct {
	d *Daemon

	mu         sync.Mutex
	data, adm  *server
	retiring   sync.WaitGroup // old servers still finishing their requests
	dataShape  serverShape
	adminShape serverShape
}

type server struct {
	srv *http.Server
	ln  net.Listener
	wg  sync.WaitGroup
}

// serverShape is what a data or admin server is built from; a change of
// it replaces the server.
type serverShape struct {
	addr             string
	tls, h2c         bool
	readHeader, idle time.Duration
	maxHeaderBytes   int
}

func dataShape(c *config.Config) serverShape {
	t := c.Timeouts
	return serverShape{addr: c.Listen, tls: c.TLS.CertFile != "", h2c: c.H2C,
		readHeader: t.ClientReadHeader.D(), idle: t.ClientIdle.D(), maxHeaderBytes: t.MaxHeaderBytes}
}

func adminShape(c *config.Config) serverShape {
	return serverShape{addr: c.Admin.Listen, readHeader: 10 * time.Second}
}

// listen binds addr with SO_REUSEPORT, so that a reload can bind the same
// address again before it lets the old listener go.
func listen(addr string) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	return lc.Listen(context.Background(), "tcp", addr)
}

func startServers(d *Daemon, cfg *config.Config) (*servers, error) {
	s := &servers{d: d, dataShape: dataShape(cfg), adminShape: adminShape(cfg)}
	var err error
	if s.adm, err = s.build(s.adminShape, d.admin, "", nil, nil); err != nil {
		return nil, fmt.Errorf("admin listener %s: %w", cfg.Admin.Listen, err)
	}
	if s.data, err = s.build(s.dataShape, d.proxy, "", d.certs, d.conns); err != nil {
		s.adm.ln.Close()
		return nil, fmt.Errorf("listener %s: %w", cfg.Listen, err)
	}
	s.serve(s.adm)
	s.serve(s.data)
	return s, nil
}

// build binds a server of the given shape; bound is the address to bind
// instead of shape.addr (the running one's, when the address is unchanged:
// ":0" must not move to another port); certs serves its certificate when
// the shape has TLS; guard, when set, counts and guards its connections
// (the data plane's admission.max_connections and client_stall).
func (s *servers) build(shape serverShape, h http.Handler, bound string, certs *certStore, guard *proxy.ConnGuard) (*server, error) {
	addr := shape.addr
	if bound != "" {
		addr = bound
	}
	ln, err := listen(addr)
	if err != nil {
		return nil, err
	}
	if guard != nil {
		ln = guard.Listener(ln)
	}
	errLog := slog.NewLogLogger(s.d.log.Handler(), slog.LevelWarn)
	srv := &http.Server{
		Handler: h, ReadHeaderTimeout: shape.readHeader, IdleTimeout: shape.idle,
		MaxHeaderBytes: shape.maxHeaderBytes, ErrorLog: errLog, Protocols: new(http.Protocols),
	}
	// One listener, one way in: HTTPS with ALPN (h2, http/1.1) when a
	// certificate is configured, else cleartext HTTP/1.1 plus, with h2c,
	// HTTP/2 by prior knowledge (Upgrade: h2c is not offered; see proxy/protocols.go).
	srv.Protocols.SetHTTP1(true)
	switch {
	case shape.tls:
		srv.TLSConfig = certs.serverConfig()
		srv.Protocols.SetHTTP2(true)
	case shape.h2c:
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	return &server{srv: srv, ln: ln}, nil
}

func (s *servers) serve(sv *server) {
	sv.wg.Add(1)
	go func() {
		defer sv.wg.Done()
		ln := sv.ln
		if sv.srv.TLSConfig != nil {
			ln = tls.NewListener(ln, sv.srv.TLSConfig)
		}
		if err := sv.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.d.log.Error("server stopped", "addr", sv.ln.Addr().String(), "err", err)
		}
	}()
}

// dataServer returns the data-plane server in use.
func (s *servers) dataServer() *server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.data
}

func (s *servers) dataAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.data.ln.Addr().String()
}

func (s *servers) adminAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.adm.ln.Addr().String()
}

// swap is a reload's part of the servers, in two steps: prepare binds the
// servers whose shape changed (and fails, changing nothing, if a bind
// fails); commit starts them and retires the old ones; abort closes what
// prepare bound.
type swap struct {
	s          *servers
	data, adm  *server
	dataShape  serverShape
	adminShape serverShape
}

func (s *servers) prepare(next *config.Config, certs *certStore) (*swap, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := &swap{s: s, dataShape: dataShape(next), adminShape: adminShape(next)}
	var err error
	if w.dataShape != s.dataShape {
		w.data, err = s.build(w.dataShape, s.d.proxy, sameBound(s.dataShape, w.dataShape, s.data), certs, s.d.conns)
		if err != nil {
			return nil, fmt.Errorf("listen: %s: %w", next.Listen, err)
		}
	}
	if w.adminShape != s.adminShape {
		w.adm, err = s.build(w.adminShape, s.d.admin, sameBound(s.adminShape, w.adminShape, s.adm), nil, nil)
		if err != nil {
			w.abort()
			return nil, fmt.Errorf("admin.listen: %s: %w", next.Admin.Listen, err)
		}
	}
	return w, nil
}

// sameBound returns the running server's bound address when the address
// setting did not change.
func sameBound(old, next serverShape, running *server) string {
	if old.addr == next.addr {
		return running.ln.Addr().String()
	}
	return ""
}

func (w *swap) abort() {
	for _, sv := range []*server{w.data, w.adm} {
		if sv != nil {
			sv.ln.Close()
		}
	}
}

// commit serves on the new servers and lets the old ones finish within grace.
func (w *swap) commit(grace time.Duration) {
	s := w.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if w.data != nil {
		s.serve(w.data)
		s.retire(s.data, grace)
		s.data, s.dataShape = w.data, w.dataShape
	}
	if w.adm != nil {
		s.serve(w.adm)
		s.retire(s.adm, grace)
		s.adm, s.adminShape = w.adm, w.adminShape
	}
}

func (s *servers) retire(old *server, grace time.Duration) {
	s.retiring.Add(1)
	go func() {
		defer s.retiring.Done()
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		if err := old.srv.Shutdown(ctx); err != nil {
			old.srv.Close()
		}
		old.wg.Wait()
	}()
}

// shutdown stops both servers within ctx: no new connections, in-flight
// requests finish, and the proxy drains the upgraded connections
// (WebSocket) that http.Server.Shutdown does not see, within the same grace.
func (s *servers) shutdown(ctx context.Context, p *proxy.Handler, log *slog.Logger) error {
	s.mu.Lock()
	data, adm := s.data, s.adm
	s.mu.Unlock()
	upgraded := make(chan int, 1)
	go func() { upgraded <- p.DrainUpgrades(ctx) }()
	err := data.srv.Shutdown(ctx)
	if err != nil {
		data.srv.Close() // the grace is over: cut what still runs (long gRPC streams)
	}
	errs := []error{err, adm.srv.Shutdown(ctx)}
	if n := <-upgraded; n > 0 {
		log.Info("closed upgraded connections still open at the end of the grace", "count", n)
	}
	data.wg.Wait()
	adm.wg.Wait()
	s.retiring.Wait()
	return errors.Join(errs...)
}
