// Package admin serves lbd's control surface on the admin listener: the
// admin REST API, /metrics, /readyz, /healthz and /debug. It never touches
// actor state: reads go through snapshots or Stats asks, changes are
// messages to the owning actor.
package admin

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lbd/lbd/actor"
	"github.com/lbd/lbd/backendactor"
	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/scheduler"
)

// Options are the admin server's dependencies.
type Options struct {
	Scheduler *scheduler.Scheduler
	Registry  *actor.Registry
	Gatherer  prometheus.Gatherer
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

	// Token, when not empty, is the bearer token every call needs except
	// GET /healthz and GET /readyz (probes of orchestrators carry no
	// secret). It is the first token: SetToken replaces it.
	Token string
	// MaxBodyBytes limits request bodies (default 64 KiB).
	MaxBodyBytes int64
	// RemoveGrace is how long a removed backend may finish its in-flight
	// requests before its actor stops (default 30s).
	RemoveGrace time.Duration
	// Changed, when set, is called after every successful change (the state
	// file's writer); it returns once the change is durable.
	Changed func(ctx context.Context) error
	// Checks are extra subsystem probes for /admin/selftest, by name: each
	// returns a detail for the report, or an error when the subsystem fails.
	Checks map[string]func(ctx context.Context) (string, error)
}

// Server is the admin HTTP handler.
type Server struct {
	o   Options
	mux *http.ServeMux
	// policyMu serialises policy changes: each reads the scheduler's
	// settings, fills in what the call leaves out and sends them back, and
	// two such round trips must not interleave (one would undo the other).
	// It guards that sequence of messages, no actor state.
	policyMu sync.Mutex
	token    atomic.Pointer[bearer] // nil: no token required
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
	if o.RemoveGrace <= 0 {
		o.RemoveGrace = 30 * time.Second
	}
	s := &Server{o: o, mux: http.NewServeMux()}
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
	s.mux.HandleFunc("GET /admin/backends", s.listBackends)
	s.mux.HandleFunc("GET /debug/actors", s.actors)
	s.mux.HandleFunc("GET /debug/config", s.debugConfig)
	s.mux.HandleFunc("GET /admin/metrics/json", s.metricsJSON)
	s.mux.HandleFunc("GET /admin/advisory", s.advisory)
	s.mux.HandleFunc("GET /admin/selftest", s.selftest)
	s.backendRoutes()
	s.policyRoutes()
	s.canaryRoutes()
	if s.o.Gatherer != nil {
		s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.o.Gatherer, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.o.Logger.Handler(), slog.LevelWarn)}))
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

// readiness counts backends by state from their snapshots.
type readiness struct {
	Ready    bool           `json:"ready"`
	Eligible int            `json:"eligible"`
	Total    int            `json:"total"`
	States   map[string]int `json:"states"`
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	rd := readiness{States: map[string]int{}}
	for _, h := range s.o.Scheduler.Picker().Backends() {
		snap := h.Snapshot()
		rd.Total++
		rd.States[snap.State]++
		if snap.Eligible {
			rd.Eligible++
		}
	}
	rd.Ready = rd.Eligible > 0
	status := http.StatusOK
	if !rd.Ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, rd)
}

// Stats asks every backend actor for its figures, in configuration order.
func (s *Server) Stats(ctx context.Context) ([]backendactor.Stats, error) {
	hs := s.o.Scheduler.Picker().Backends()
	out := make([]backendactor.Stats, 0, len(hs))
	for _, h := range hs {
		st, err := h.Stats(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

func (s *Server) listBackends(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	stats, err := s.Stats(ctx)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "backend actor did not answer: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"backends": stats})
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
