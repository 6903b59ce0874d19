package proxy

// Upgraded connections. A request with "Connection: Upgrade" (a WebSocket
// handshake) is proxied by httputil.ReverseProxy, which hijacks the client
// connection once the backend answers 101 and copies bytes both ways until
// either side closes. The response body it closes at the end is the
// releaseRWBody of transport.go, so the backend's in-flight slot is held for
// the connection's whole life.
//
// What this file adds is the connection's end of life. http.Server.Shutdown
// does not know hijacked connections, and a drained backend keeps its open
// WebSockets. Each upgraded request therefore gets a watcher goroutine, which
// owns the decision to close it: when its backend has been draining for
// DrainTimeout, or when lbd has been shutting down for DrainTimeout (or the
// shutdown's own deadline comes first), it cancels the request's context, and
// ReverseProxy closes both sockets. New upgrades are refused with 503
// (X-Lbd-Reject: draining) once the shutdown has begun.

import (
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbd/lbd/backendactor"
)

// UpgradeOptions configure upgraded connections (WebSocket).
type UpgradeOptions struct {
	// DrainTimeout is how long an open upgraded connection may outlive the
	// drain of its backend, or the start of lbd's shutdown, before lbd closes
	// it. Zero closes it at once.
	DrainTimeout time.Duration
}

// upgrades counts the open upgraded connections and signals their watchers.
// Its lock is taken once when a connection starts and once when it ends,
// never per byte or per request.
type upgrades struct {
	times atomic.Pointer[upgradeTimes] // a reload may change them; a connection reads them when it needs them

	mu       sync.Mutex
	n        int
	draining bool
	idle     chan struct{} // closed when draining and n is 0

	shutdown chan struct{} // closed when the drain starts
	force    chan struct{} // closed when the drain's time is up
	forceFn  func()
}

// upgradeTimes are the drain timeout and the drain poll it implies.
type upgradeTimes struct{ limit, poll time.Duration }

func newUpgrades(o UpgradeOptions) *upgrades {
	u := &upgrades{idle: make(chan struct{}), shutdown: make(chan struct{}), force: make(chan struct{})}
	u.setDrainTimeout(o.DrainTimeout)
	u.forceFn = sync.OnceFunc(func() { close(u.force) })
	return u
}

func (u *upgrades) setDrainTimeout(d time.Duration) {
	limit := max(d, 0)
	// A drained backend is noticed by polling its snapshot (an atomic load):
	// often enough to honour short limits, at most once a second per connection.
	u.times.Store(&upgradeTimes{limit: limit, poll: min(max(limit/4, 100*time.Millisecond), time.Second)})
}

// SetUpgradeDrainTimeout changes websocket.drain_timeout: connections whose
// drain has not started yet take the new one.
func (h *Handler) SetUpgradeDrainTimeout(d time.Duration) { h.ups.setDrainTimeout(d) }

// upgradeConn is one upgraded request, from its arrival to its end.
type upgradeConn struct {
	u       *upgrades
	ctx     context.Context
	close   context.CancelFunc
	backend chan *backendactor.Handle // the backend that answered 101, sent once
	body    io.Closer                 // the 101's body (releaseBody): the backend's slot, set on the request's goroutine
}

// start admits an upgrade request and starts its watcher; ok is false while
// lbd drains. end must be called when the request (the connection) ends.
func (u *upgrades) start(ctx context.Context) (c *upgradeConn, end func(), ok bool) {
	u.mu.Lock()
	if u.draining {
		u.mu.Unlock()
		return nil, nil, false
	}
	u.n++
	u.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	c = &upgradeConn{u: u, ctx: ctx, close: cancel, backend: make(chan *backendactor.Handle, 1)}
	go c.watch()
	return c, func() {
		cancel()
		// ReverseProxy closes the backend's side from a goroutine of its own
		// after it returns; closing it here first gives the backend's slot
		// back before the drain can see this connection gone.
		if c.body != nil {
			_ = c.body.Close()
		}
		u.end()
	}, true
}

func (u *upgrades) end() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.n--
	if u.n == 0 && u.draining {
		close(u.idle)
	}
}

// open returns the number of upgraded connections (or upgrade requests
// waiting for their backend) right now.
func (u *upgrades) open() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.n
}

// drain refuses new upgrades, gives the open ones the drain timeout (or
// until ctx ends, whichever is first), then closes what is left and waits
// briefly for those to go.
func (u *upgrades) drain(ctx context.Context) (closed int) {
	u.mu.Lock()
	if !u.draining {
		u.draining = true
		close(u.shutdown)
		if u.n == 0 {
			close(u.idle)
		}
	}
	u.mu.Unlock()
	select {
	case <-u.idle:
		return 0
	case <-ctx.Done():
	}
	closed = u.open()
	u.forceFn()
	// Cancelling makes ReverseProxy close both sockets, which ends its copy
	// loops at once; the bound only guards against a stuck peer write.
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-u.idle:
	case <-t.C:
	}
	return closed
}

// upgraded records that backend h accepted the upgrade: the 101 is the
// request's answer (ReverseProxy writes it on the hijacked connection, past
// WriteHeader), the request leaves admission, and the watcher learns its
// backend. It runs on the request's goroutine, in RoundTrip; body is the
// 101's body, closed (the backend's slot released) when the request ends.
func (s *reqState) upgraded(h *backendactor.Handle, body io.Closer) {
	s.status, s.wrote, s.headers = http.StatusSwitchingProtocols, true, time.Since(s.start)
	s.leaveAdmission()
	if s.upgrade != nil {
		s.upgrade.body = body
		select {
		case s.upgrade.backend <- h:
		default:
		}
	}
}

// watch closes the connection when its time is up; it returns when the
// connection ends by itself.
func (c *upgradeConn) watch() {
	u := c.u
	var (
		backend      *backendactor.Handle
		ticker       *time.Ticker
		poll         <-chan time.Time
		timer        *time.Timer
		expire       <-chan time.Time // the limit runs while this is set
		shutdown     = u.shutdown
		shuttingDown bool
	)
	arm := func() {
		if expire == nil {
			timer = time.NewTimer(u.times.Load().limit)
			expire = timer.C
		}
	}
	defer func() {
		if ticker != nil {
			ticker.Stop()
		}
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-u.force:
			c.close()
			return
		case <-expire:
			c.close()
			return
		case <-shutdown:
			shutdown, shuttingDown = nil, true
			arm()
		case backend = <-c.backend:
			ticker = time.NewTicker(u.times.Load().poll)
			poll = ticker.C
		case <-poll:
			drained := backend.Snapshot().State == backendactor.StateDraining
			switch {
			case drained:
				arm()
			case expire != nil && !shuttingDown: // undrained in time: the connection may stay
				timer.Stop()
				expire = nil
			}
		}
	}
}
