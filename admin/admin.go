// Package admin serves lbd's control surface on the admin listener: the
// admin REST API, /metrics, /readyz, /healthz and /debug. It never touches
// actor state: reads go through the routing table and snapshots the owners
// publish or through Stats asks, and every change is a routing.Change that
// the routing-config owner carries out (Control.Apply), so that an admin
// call and a reload never interleave.
package admin

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lbd/lbd/actor"
	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/events"
	"github.com/lbd/lbd/proxy"
	"github.com/lbd/lbd/routing"
	"github.com/lbd/lbd/scheduler"
)

// Control is the daemon's side of the admin API: the routing-config
// owner's published table and pools, and its two commands.
type Control interface {
	// Apply makes one admin change and returns once it is carried out and
	// persisted; its errors are routing's (ErrNotFound, ErrExists, ...).
	Apply(ctx context.Context, c routing.Change) error
	// ReloadFile reads the config file again and applies it (or, with
	// dryRun, only plans it); the plan is encoded as it is.
	ReloadFile(ctx context.Context, dryRun bool) (plan any, err error)
	// Table is the routing table lbd runs.
	Table() *routing.Table
	// Scheduler is the named pool's scheduler.
	Scheduler(pool string) (*scheduler.Scheduler, bool)
}

// Options are the admin server's dependencies.
type Options struct {
	Control  Control
	Registry *actor.Registry
	Gatherer prometheus.Gatherer
	// Config returns the effective configuration for /debug/config.
	Config func() *config.Config
	Logger *slog.Logger
	// AskTimeout bounds each ask to an actor (default 2s).
	AskTimeout time.Duration

	// Observability sources (issue 6), each optional; their values are
	// encoded as JSON as they are, as expvar.Func's are, so admin needs no
	// import of the packages that own them.
	//
	// Traffic returns the totals since start and the recent rates for
	// GET /admin/metrics/json (the metrics dumper's window).
	Traffic func() (totals, rates any)
	// Admission returns the admission control and AIMD state.
	Admission func() any
	// Advisory returns the scaling advisory's report for GET /admin/advisory.
	Advisory func() any
	// Outliers returns a pool's outlier report for GET /admin/outliers
	// (false for an unknown pool).
	Outliers func(pool string) (any, bool)
	// Tap is the data plane's tap (GET /admin/tap); Events the history of
	// backend transitions (GET /admin/events). Either may be nil.
	Tap    *proxy.Tap
	Events *events.Log
	// Discovery returns the discovery sources' statuses for GET /admin/discovery.
	Discovery func() any
	// Fleet returns the fleet link's status for GET /admin/fleet.
	Fleet func() any

	// Token, when not empty, is the bearer token every call needs except
	// GET /healthz and GET /readyz (probes of orchestrators carry no
	// secret). It is the first token: SetToken replaces it.
	Token string
	// MaxBodyBytes limits request bodies (default 64 KiB).
	MaxBodyBytes int64
	// Checks are extra subsystem probes for /admin/selftest, by name: each
	// returns a detail for the report, or an error when the subsystem fails.
	Checks map[string]func(ctx context.Context) (string, error)
}

// Server is the admin HTTP handler.
type Server struct {
	o     Options
	mux   *http.ServeMux
	token atomic.Pointer[bearer] // nil: no token required

	streams    context.Context // ends every SSE stream (EndStreams)
	endStreams context.CancelFunc
}

// New builds the admin handler with every route registered.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.AskTimeout <= 0 {
		o.AskTimeout = 2 * time.Second
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 64 << 10
	}
	s := &Server{o: o, mux: http.NewServeMux()}
	s.streams, s.endStreams = context.WithCancel(context.Background())
	s.SetToken(o.Token)
	s.routes()
	return s
}

// Handle adds a route; other packages extend the admin surface with it.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

func (s *Server) routes() {
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.HandleFunc("GET /admin/backends", takes(s.listBackends, "pool"))
	s.mux.HandleFunc("GET /admin/pools", takes(s.listPools))
	s.mux.HandleFunc("POST /admin/reload", takes(s.reload, "dry_run"))
	s.mux.HandleFunc("GET /admin/outliers", takes(s.outliers, "pool"))
	s.mux.HandleFunc("GET /admin/discovery", takes(s.discovery))
	s.mux.HandleFunc("GET /admin/fleet", takes(s.fleet))
	s.mux.HandleFunc("GET /debug/actors", s.actors)
	s.mux.HandleFunc("GET /debug/config", s.debugConfig)
	s.mux.HandleFunc("GET /admin/metrics/json", takes(s.metricsJSON))
	s.mux.HandleFunc("GET /admin/advisory", s.advisory)
	s.mux.HandleFunc("GET /admin/selftest", s.selftest)
	s.backendRoutes()
	s.policyRoutes()
	s.canaryRoutes()
	s.seeRoutes()
	s.uiRoutes()
	if s.o.Gatherer != nil {
		// OpenMetrics, for a scraper that asks for it, is the format that
		// carries exemplars (the trace ids on lbd_request_duration_seconds);
		// the classic text format stays the default.
		s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.o.Gatherer, promhttp.HandlerOpts{
			ErrorLog: slog.NewLogLogger(s.o.Logger.Handler(), slog.LevelWarn), EnableOpenMetrics: true,
		}))
	}
	s.mux.HandleFunc("/debug/pprof/", pprof.Index)
	s.mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	s.mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	s.mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	s.mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}

func (s *Server) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.o.AskTimeout)
}

// writeJSON writes v with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// writeError writes API.md's error shape.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// readiness counts backends by state from their snapshots, over every pool.
type readiness struct {
	Ready    bool                 `json:"ready"`
	Eligible int                  `json:"eligible"`
	Total    int                  `json:"total"`
	States   map[string]int       `json:"states"`
	Pools    map[string]poolReady `json:"pools"`
}

type poolReady struct {
	Eligible int `json:"eligible"`
	Total    int `json:"total"`
}

// readyz is 200 while at least one backend of any pool is eligible: lbd
// can serve something. Each pool's counts say which.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	rd := readiness{States: map[string]int{}, Pools: map[string]poolReady{}}
	for _, p := range s.o.Control.Table().Pools {
		sched, ok := s.o.Control.Scheduler(p.Name)
		if !ok {
			continue
		}
		var pr poolReady
		for _, h := range sched.Picker().Backends() {
			snap := h.Snapshot()
			pr.Total++
			rd.States[snap.State]++
			if snap.Eligible {
				pr.Eligible++
			}
		}
		rd.Pools[p.Name] = pr
		rd.Total += pr.Total
		rd.Eligible += pr.Eligible
	}
	rd.Ready = rd.Eligible > 0
	status := http.StatusOK
	if !rd.Ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, rd)
}

func (s *Server) actors(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"actors": s.o.Registry.Snapshot()})
}

func (s *Server) debugConfig(w http.ResponseWriter, _ *http.Request) {
	if s.o.Config == nil {
		writeError(w, http.StatusNotFound, "no configuration available")
		return
	}
	writeJSON(w, http.StatusOK, s.o.Config().Redacted())
}
