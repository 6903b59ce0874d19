// Package proxy is lbd's data plane. Each request runs on its net/http
// goroutine (the "proxy worker"): it gets a request id, passes admission,
// consults the scheduler's published Picker, takes a slot on the chosen
// backend's handle, forwards through httputil.ReverseProxy, releases the slot
// with the outcome, and writes one access-log line. The request path sends no
// actor message and waits for no reply.
package proxy

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/xid"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/proxy/h1"
	"github.com/lbd/lbd/scheduler"
)

// PickerSource gives the current picker; *scheduler.Scheduler is one.
type PickerSource interface {
	Picker() *scheduler.Picker
}

// Live are the data-plane settings a reload changes outside the pools:
// each request reads them once, at its start, from one atomic pointer.
type Live struct {
	// MaxBodyBytes caps request bodies (413 beyond); 0 means no limit.
	MaxBodyBytes int64
	// ClientStall cuts a client that has sent no body byte, or taken no
	// response byte, for this long (stall.go); 0 means never.
	ClientStall time.Duration
	// MaxHeaderCount caps a request's header fields (431 beyond) and
	// MaxURIBytes its request target (414 beyond); 0 means no cap.
	MaxHeaderCount int
	MaxURIBytes    int
	AccessLog      *AccessLog // nil logs nothing
	// Tracing makes spans of each request and attempt; nil makes none and
	// passes traceparent through untouched.
	Tracing *Tracing
}

// Admitter decides whether a request may start (rate limits, global and
// adaptive concurrency limits). Admit returns, for an admitted request, the
// Ticket to tell once when the request is over; for a refused one a nil
// Ticket, the reject reason ("rate-limit", "overload"), its status and how
// long the client should wait.
type Admitter interface {
	Admit(r *http.Request, client string) (t Ticket, reason string, status int, retryAfter time.Duration)
}

// Ticket is an admitted request's place under the limits. It stands for
// what admitted the request, so that limits swapped while it runs are told
// of its end by the ones that counted it (Admission.Reconfigure). Admit
// must not allocate one per request: a pointer to a long-lived value does.
type Ticket interface {
	Done(latency time.Duration, failed bool)
	// Leave is Done for a request whose time says nothing about the
	// backends (the client failed to send its body): no latency sample.
	Leave()
	// Upload says the request's body is still arriving from the client
	// (true, told once after Admit) or no longer (false, told once).
	Upload(started bool)
}

// Options configure New.
type Options struct {
	// Scheduler, when set, is the pool "default" of a proxy without
	// routes, with Retries as its retry rules; the daemon instead installs
	// its pools and routes with SetRoutes.
	Scheduler PickerSource
	Admitter  Admitter // nil admits everything
	// ClientIP derives the client's identity (rate-limit and sticky key)
	// from the request; nil uses the peer address.
	ClientIP  func(*http.Request) string
	Transport TransportOptions
	Retries   RetryOptions
	Upgrades  UpgradeOptions
	// Live are the first data-plane settings (SetLive replaces them).
	Live Live
	// Registerer receives the data-plane metrics; nil registers nowhere.
	Registerer prometheus.Registerer
	Policy     func() string // the policy name for access logs; nil reads the picker
	Logger     *slog.Logger
	// InstanceID names this lbd in the Via entry of forwarded requests,
	// which is how a request that loops back is recognised; "" makes one.
	InstanceID string
}

// Handler is the data-plane http.Handler.
type Handler struct {
	opts    Options
	routes  atomic.Pointer[Routes]
	live    atomic.Pointer[Live]
	rp      *httputil.ReverseProxy
	tr      *retryTransport
	ups     *upgrades
	tap     *Tap
	metrics *metrics
	log     *slog.Logger
	via     via
}

// New builds the data-plane handler.
func New(o Options) *Handler {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ClientIP == nil {
		o.ClientIP = PeerIP
	}
	if o.InstanceID == "" {
		o.InstanceID = xid.New().String()
	}
	h := &Handler{opts: o, log: o.Logger, metrics: newMetrics(o.Registerer), ups: newUpgrades(o.Upgrades),
		tap: newTap(o.Registerer), via: newVia(o.InstanceID)}
	h.tr = &retryTransport{h: h}
	h.tr.ups.Store(newUpstreams(o.Transport, h.metrics))
	live := o.Live
	h.live.Store(&live)
	var pools map[string]*Pool
	if o.Scheduler != nil {
		pools = map[string]*Pool{config.DefaultPool: NewPool(config.DefaultPool, o.Scheduler, PoolSettings{Retries: o.Retries})}
	}
	h.routes.Store(h.NewRoutes(nil, pools))
	h.rp = &httputil.ReverseProxy{
		Rewrite:        h.rewrite,
		Transport:      h.tr,
		BufferPool:     bufferPool{},
		ModifyResponse: moveHeader,
		ErrorHandler:   h.errorHandler,
		ErrorLog:       slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn),
	}
	return h
}

// InstanceID returns the id this lbd puts in Via.
func (h *Handler) InstanceID() string { return h.opts.InstanceID }

// SetRoutes installs a new routing table; requests already routed keep
// their pool.
func (h *Handler) SetRoutes(t *Routes) { h.routes.Store(t) }

// SetLive installs new data-plane settings for the requests that start next.
func (h *Handler) SetLive(l Live) { h.live.Store(&l) }

// SetTransport replaces the upstream transports (timeouts.dial,
// response_header, idle_conn): requests that start next use new
// connections made under the new settings; the old transports' idle
// connections are closed, and their busy ones finish their requests.
func (h *Handler) SetTransport(o TransportOptions) {
	old := h.tr.ups.Swap(newUpstreams(o, h.metrics))
	old.closeIdle()
}

// Close releases idle upstream connections and ends the tap's streams.
func (h *Handler) Close() {
	h.tr.ups.Load().closeIdle()
	h.tap.Close()
}

// Tap returns the live tap of the handler's routing decisions.
func (h *Handler) Tap() *Tap { return h.tap }

// DrainUpgrades is the data plane's part of a shutdown for connections that
// http.Server.Shutdown does not see: it refuses new protocol upgrades, lets
// open WebSockets run for the drain timeout or until ctx ends, then closes
// them. It returns how many it had to close.
func (h *Handler) DrainUpgrades(ctx context.Context) int { return h.ups.drain(ctx) }

type ctxKey struct{}

func stateOf(ctx context.Context) *reqState {
	s, _ := ctx.Value(ctxKey{}).(*reqState)
	return s
}

// ServeHTTP proxies one request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := &reqState{ResponseWriter: w, start: time.Now(), status: http.StatusOK, live: h.live.Load()}
	if h.tap.hub.Listening() { // the tap's whole cost when no one listens
		st.tap = newTapRecord()
	}
	st.id = requestID(r.Header)
	st.setHeader(w.Header(), "X-Request-Id", hdrResponseID, st.id)
	closeAfterChunked(w, r)
	st.client = h.opts.ClientIP(r)
	if isGRPC(r.Header) {
		st.grpc = newGRPCCall(r.Header, st.start)
	}
	st.route = h.routes.Load().match(r)
	if t := st.live.Tracing; t != nil {
		t.startServer(r, st)
	}
	if h.refuse(st, r) {
		h.finish(st, r)
		return
	}
	if st.route == nil {
		st.reject(http.StatusNotFound, RejectNoRoute, 0)
		h.finish(st, r)
		return
	}
	st.pool, st.settings = st.route.pool, st.route.pool.settings.Load()
	if !h.limitBody(w, r, st) {
		h.finish(st, r)
		return
	}
	st.wrapBody(r, st.live.ClientStall)
	st.watchWrites(r, st.live.ClientStall)
	defer st.stopWatches()
	early := r.GetBody == nil && r.ContentLength > 0
	if !h.bufferEarly(r, st) || !h.prefetchChunked(r, st) {
		h.finish(st, r)
		return
	}
	early = early && r.GetBody != nil

	ctx, done, ok := h.enter(w, r, st)
	if !ok {
		h.finish(st, r)
		return
	}
	defer done()

	if a := h.opts.Admitter; a != nil {
		ticket, reason, status, retryAfter := a.Admit(r, st.client)
		if ticket == nil {
			st.reject(status, reason, retryAfter)
			h.finish(st, r)
			return
		}
		st.ticket = ticket
		if early {
			st.admitted = time.Since(st.start)
		}
		st.body.startUpload(ticket)
		defer st.leaveAdmission()
	}
	if !st.pool.enter(st.settings) {
		st.reject(http.StatusServiceUnavailable, RejectOverload, overloadRetryAfter)
		h.finish(st, r)
		return
	}
	if st.route.requests != nil {
		st.route.requests.Inc()
	}
	if st.continue100 { // see protocols.go
		w.WriteHeader(http.StatusContinue)
	}
	defer func() { // deferred: ReverseProxy aborts a broken response by panicking
		st.pool.leave()
		h.finish(st, r)
		h1.ReuseHeader(st.upHeader) // ReverseProxy and the retry transport are done with it
	}()
	h.rp.ServeHTTP(st, r.WithContext(ctx))
}

func (h *Handler) finish(st *reqState, r *http.Request) {
	d := time.Since(st.start)
	h.metrics.observe(st, d)
	if st.tap != nil {
		h.tap.finish(st, r, d)
	}
	al := st.live.AccessLog
	policy := ""
	if al != nil || st.span != nil && st.span.IsRecording() {
		if h.opts.Policy != nil {
			policy = h.opts.Policy()
		} else if st.pool != nil {
			policy = st.pool.picker().Policy()
		}
	}
	if st.span != nil {
		st.endServer(policy)
	}
	if al != nil {
		al.Log(r, st, d, policy)
	}
}

// rewrite sets lbd's own headers on the outgoing request, after
// ReverseProxy removed the hop-by-hop ones (so a client's "Connection:
// X-Request-Id" cannot strip them): X-Forwarded-For (appending to what
// arrived), -Host and -Proto as ProxyRequest.SetXForwarded does,
// X-Request-Id, X-Real-IP (the client as the trusted-proxy rules name it,
// never what the client claims) and this lbd's Via entry, the values kept
// in the request's state (setHeader). It strips the route's path prefix
// when it says so. The upstream URL is set per attempt by the transport,
// once a backend is picked; the Host header stays the client's.
func (h *Handler) rewrite(pr *httputil.ProxyRequest) {
	pr.Out.URL.Scheme = "http"
	out := pr.Out.Header
	h.via.add(out, pr.In)
	st := stateOf(pr.In.Context())
	if st == nil {
		out["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
		pr.SetXForwarded()
		return
	}
	if ip, _, err := net.SplitHostPort(pr.In.RemoteAddr); err != nil {
		delete(out, "X-Forwarded-For")
	} else if prior := pr.In.Header["X-Forwarded-For"]; len(prior) > 0 {
		st.setHeader(out, "X-Forwarded-For", hdrForwardedFor, strings.Join(prior, ", ")+", "+ip)
	} else {
		st.setHeader(out, "X-Forwarded-For", hdrForwardedFor, ip)
	}
	st.setHeader(out, "X-Forwarded-Host", hdrForwardedHost, pr.In.Host)
	proto := "http"
	if pr.In.TLS != nil {
		proto = "https"
	}
	st.setHeader(out, "X-Forwarded-Proto", hdrForwardedProto, proto)
	st.setHeader(out, "X-Request-Id", hdrRequestID, st.id)
	st.setHeader(out, "X-Real-Ip", hdrRealIP, st.client)
	if pr.In.GetBody != nil && pr.Out.Body != nil && pr.Out.Body != http.NoBody {
		// A body bufferEarly read: send its reader itself, not ReverseProxy's
		// wrapper of it, so the transport writes the bytes without a copy buffer.
		pr.Out.Body = pr.In.Body
	}
	if st.route != nil && st.route.stripPrefix {
		pr.Out.URL.Path, pr.Out.URL.RawPath = st.route.strip(pr.Out.URL.Path, pr.Out.URL.RawPath)
	}
}

// PeerIP returns the address of the connection's peer, without the port.
func PeerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// moveHeader is ReverseProxy's ModifyResponse: it moves the backend's
// header fields into the client's response header itself, value slices
// and all, and leaves resp.Header empty, so that ReverseProxy's copyHeader,
// which appends value by value into new slices (an allocation per field),
// has nothing left to copy. The result is the same header. Responses whose
// header is read again after this point keep ReverseProxy's own copy: a 101
// (the upgrade checks it), an event stream (flushInterval reads its type)
// and gRPC (the retry transport reads grpc-status when the body closes).
//
// It also notes the response's header map, which ServeHTTP gives back to
// proxy/h1 for a later response once the request is over.
func moveHeader(resp *http.Response) error {
	if resp.Request == nil {
		return nil
	}
	st := stateOf(resp.Request.Context())
	if st == nil {
		return nil
	}
	st.upHeader = resp.Header
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return nil
	}
	if ct := resp.Header["Content-Type"]; len(ct) > 0 &&
		(hasPrefixFold(ct[0], "text/event-stream") || hasPrefixFold(ct[0], "application/grpc")) {
		return nil
	}
	dst := st.ResponseWriter.Header()
	for k, vv := range resp.Header {
		if prior, ok := dst[k]; ok {
			dst[k] = append(prior, vv...)
		} else {
			dst[k] = vv
		}
	}
	clear(resp.Header)
	return nil
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// bufferPool lends ReverseProxy its 32 KiB copy buffers. The pool holds
// array pointers, so that neither Get nor Put allocates (a slice would be
// boxed anew on every Put).
type bufferPool struct{}

const copyBufSize = 32 << 10

var buffers = sync.Pool{New: func() any { return new([copyBufSize]byte) }}

func (bufferPool) Get() []byte { return buffers.Get().(*[copyBufSize]byte)[:] }

func (bufferPool) Put(b []byte) {
	if cap(b) >= copyBufSize {
		buffers.Put((*[copyBufSize]byte)(b[:copyBufSize]))
	}
}
