package synth

import (
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
)

// Server is the synthetic backend handler. Its knobs and counters are safe
// for concurrent use; create it with New.
type Server struct {
	knobs atomic.Pointer[Knobs]

	rmu sync.Mutex // guards rnd: *rand.Rand is not safe for concurrent use
	rnd *rand.Rand

	requests atomic.Int64
	health   atomic.Int64
	inflight atomic.Int64
	methods  [len(methodNames) + 1]atomic.Int64 // last slot: any other method

	// mu orders ServeHTTP's wg.Add against Close, so Wait never races an Add.
	mu     sync.Mutex
	closed bool
	done   chan struct{}
	wg     sync.WaitGroup

	// arrived, when set (by tests in this package), is told of every traffic
	// request as it starts, so a test can wait for "the request is in the
	// handler" without polling.
	arrived func(*http.Request)
}

var methodNames = [...]string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace,
}

// Option configures a Server at construction.
type Option func(*Server)

// WithRand makes the server draw its error, hang and jitter decisions from r,
// so a test with a seeded source gets the same sequence every run. The server
// serialises its use of r.
func WithRand(r *rand.Rand) Option { return func(s *Server) { s.rnd = r } }

// WithSeed is WithRand with a PCG source seeded from seed.
func WithSeed(seed uint64) Option {
	return WithRand(rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)))
}

// New returns a Server with knobs k (zero fields take their defaults).
func New(k Knobs, opts ...Option) *Server {
	s := &Server{done: make(chan struct{})}
	for _, o := range opts {
		o(s)
	}
	if s.rnd == nil {
		s.rnd = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	s.SetKnobs(k)
	return s
}

// SetKnobs replaces the knobs; requests already waiting keep the knobs they
// started with. Out-of-range values are clamped (see Knobs.Validate).
func (s *Server) SetKnobs(k Knobs) {
	k = k.withDefaults()
	s.knobs.Store(&k)
}

// Knobs returns the current knobs, defaults filled in.
func (s *Server) Knobs() Knobs { return *s.knobs.Load() }

// Requests counts requests to traffic paths: everything except /healthz and
// /_knobs, so health checks do not blur a load-distribution assertion.
func (s *Server) Requests() int64 { return s.requests.Load() }

// Count is Requests for one method. Methods outside the standard set share
// one counter, which any of them reads.
func (s *Server) Count(method string) int64 { return s.methods[methodIndex(method)].Load() }

// HealthChecks counts requests to /healthz.
func (s *Server) HealthChecks() int64 { return s.health.Load() }

// Inflight is the number of traffic requests being served right now.
func (s *Server) Inflight() int64 { return s.inflight.Load() }

func methodIndex(m string) int {
	for i, n := range methodNames {
		if n == m {
			return i
		}
	}
	return len(methodNames)
}

// Close releases every waiting request (hung, sleeping or streaming) and
// makes new requests answer 503. It does not wait; Running.Close does.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.done)
	}
}

// wait blocks until every request that entered ServeHTTP has returned.
// Only meaningful after Close.
func (s *Server) wait() { s.wg.Wait() }

func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// ServeHTTP routes a request; see the package comment for the paths.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k := s.Knobs()
	h := w.Header()
	h.Set("X-Backend", k.Name)
	for _, name := range []string{"Request-Id", "Forwarded-For", "Forwarded-Host", "Forwarded-Proto"} {
		if v := r.Header.Values("X-" + name); len(v) > 0 {
			h.Set("X-Seen-"+name, strings.Join(v, ", "))
		}
	}
	if v := r.Header.Get("Traceparent"); v != "" {
		h.Set("X-Seen-Traceparent", v)
	}
	h.Set("X-Seen-Method", r.Method)
	h.Set("X-Seen-Path", r.URL.Path)
	h.Set("X-Seen-Proto", r.Proto)

	if !s.enter() {
		http.Error(w, "synthetic backend closed", http.StatusServiceUnavailable)
		return
	}
	defer s.wg.Done()

	switch {
	case r.URL.Path == "/healthz":
		s.health.Add(1)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(k.HealthStatus)
		_, _ = w.Write([]byte(http.StatusText(k.HealthStatus) + "\n"))
		return
	case r.URL.Path == "/_knobs":
		s.serveKnobs(w, r)
		return
	}

	s.requests.Add(1)
	s.methods[methodIndex(r.Method)].Add(1)
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	if s.arrived != nil {
		s.arrived(r)
	}

	switch {
	case r.URL.Path == "/sse":
		s.serveSSE(w, r)
	case r.URL.Path == "/echo":
		s.serveEcho(w, r)
	case strings.HasPrefix(r.URL.Path, "/status/"):
		serveStatus(w, strings.TrimPrefix(r.URL.Path, "/status/"))
	default:
		s.serveDefault(w, r, k)
	}
}
