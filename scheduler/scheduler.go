// Package scheduler runs the scheduler actor: the owner of the backend set,
// the policy (rr, wrr, lc, p2c-ewma), sticky sessions and canary routing. It
// creates and retires backend actors, and after every change publishes an
// immutable Picker that the proxy's request goroutines use without sending a
// message (the grpc-go balancer/picker split).
//
// Who talks to it: cmd/lbd at start and on reload (add, remove, policy,
// rules), admin (add, remove, policy, canary, status), backend actors
// (BackendChanged, by Tell), and every reader of Picker. One scheduler runs
// per pool (Config.Name).
package scheduler

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/lbd/lbd/actor"
	"github.com/lbd/lbd/backendactor"
)

// Errors the admin API maps to statuses.
var (
	ErrExists   = errors.New("backend already exists")
	ErrNotFound = errors.New("no such backend")
	ErrInvalid  = errors.New("invalid argument")
)

// Spec describes a backend to add.
type Spec struct {
	URL         string
	Name        string // optional, shown next to the URL (backendactor.Config.Label)
	Weight      int
	MaxInflight int
	Protocol    string      // http1 (default), h2c or h2
	TLS         *tls.Config // an https backend's own trust settings; nil for the defaults
	// Initial marks backends of the starting configuration: they skip
	// warm-up, and they start healthy even when the template says
	// StartUnhealthy (lbd would otherwise refuse all traffic at start until
	// the first probes came back).
	Initial bool
	// Cause says why the backend joins ("in the config file", "admin
	// add"): the cause of its first transition.
	Cause string
}

// DefaultPool is the pool of the config's top-level backends and policy.
const DefaultPool = "default"

// Config configures New.
type Config struct {
	// Name is the pool's name (default DefaultPool). It names the actors:
	// "scheduler" and the backends' URLs for the default pool,
	// "scheduler:NAME" and "NAME:URL" for another, so that every pool has
	// its own actors in one registry even when two pools share a URL.
	Name          string
	Policy        string
	StickyEnabled bool
	StickyKey     string
	// Backend is the template for every backend actor (breaker, health
	// thresholds, warm-up, tick); URL, weight and cap come from each Spec.
	// Its rules (backendactor.Rules) change with SetRules.
	Backend  backendactor.Config
	Registry *actor.Registry
	Rand     Rand // nil: the runtime's generator
	// Now is the picker's clock: p2c-ewma decays the latency estimates of
	// backends that have gone without samples (see pickP2C). nil: time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Scheduler is the address of the scheduler actor plus its published picker.
type Scheduler struct {
	name   string
	ref    *actor.Ref
	picker atomic.Pointer[Picker]
}

// New validates cfg, starts the scheduler actor and publishes an empty picker.
func New(cfg Config) (*Scheduler, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Rand == nil {
		cfg.Rand = globalRand{}
	}
	if cfg.Name == "" {
		cfg.Name = DefaultPool
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Scheduler{name: cfg.Name}
	st := &state{pub: s, cfg: cfg, cursor: new(atomic.Uint64)}
	if err := st.setPolicy(cfg.Policy, cfg.StickyEnabled, cfg.StickyKey); err != nil {
		return nil, err
	}
	actor.Spawn(cfg.Registry, st, actor.Options{
		Name: st.schedulerName(), Kind: "scheduler", Mailbox: 1024, TickEvery: time.Second, Logger: cfg.Logger,
	})
	return s, nil
}

// Bind learns the actor's address and publishes the first picker before
// the actor's goroutine starts.
func (s *state) Bind(r *actor.Ref) {
	s.pub.ref = r
	s.rebuild()
}

// Name returns the pool's name.
func (s *Scheduler) Name() string { return s.name }

// The actors' names: the default pool's are unqualified, as they were
// before pools, so /debug/actors and the logs of a one-pool lbd read the same.
func (s *state) schedulerName() string {
	if s.cfg.Name == DefaultPool {
		return "scheduler"
	}
	return "scheduler:" + s.cfg.Name
}

func (s *state) backendName(url string) string {
	if s.cfg.Name == DefaultPool {
		return url
	}
	return s.cfg.Name + ":" + url
}

// Picker returns the current picker. Never nil.
func (s *Scheduler) Picker() *Picker { return s.picker.Load() }

// Ref returns the scheduler actor's address.
func (s *Scheduler) Ref() *actor.Ref { return s.ref }

// Lookup returns the backend with the given normalised URL, or nil.
func (s *Scheduler) Lookup(url string) *backendactor.Handle {
	for _, h := range s.Picker().all {
		if h.URL() == url {
			return h
		}
	}
	return nil
}

func ask[T any](ctx context.Context, s *Scheduler, mk func(chan<- T) any) (T, error) {
	return actor.Ask(ctx, s.ref, mk)
}

type result struct {
	h   *backendactor.Handle
	err error
}

// Add starts a backend actor for spec and puts it in rotation.
func (s *Scheduler) Add(ctx context.Context, spec Spec) (*backendactor.Handle, error) {
	r, err := ask(ctx, s, func(c chan<- result) any { return addBackend{spec, c} })
	if err != nil {
		return nil, err
	}
	return r.h, r.err
}

// Remove takes the backend out of rotation at once, then lets its actor
// drain: it stops when its last in-flight request ends or grace passes.
// cause says why it leaves, for its last transition.
func (s *Scheduler) Remove(ctx context.Context, url string, grace time.Duration, cause string) error {
	r, err := ask(ctx, s, func(c chan<- result) any { return removeBackend{url, c} })
	if err == nil {
		err = r.err
	}
	if err != nil {
		return err
	}
	return r.h.Retire(ctx, time.Now().Add(grace), cause)
}

// SetPolicy switches the policy and sticky settings.
func (s *Scheduler) SetPolicy(ctx context.Context, policy string, stickyEnabled bool, stickyKey string) error {
	r, err := ask(ctx, s, func(c chan<- error) any { return setPolicy{policy, stickyEnabled, stickyKey, c} })
	if err != nil {
		return err
	}
	return r
}

// SetCanary sends percent (0..100) of requests to url; url "" clears it.
func (s *Scheduler) SetCanary(ctx context.Context, url string, percent float64) error {
	r, err := ask(ctx, s, func(c chan<- error) any { return setCanary{url, percent, c} })
	if err != nil {
		return err
	}
	return r
}

// Status is the scheduler's settings.
type Status struct {
	Pool          string   `json:"pool"`
	Policy        string   `json:"policy"`
	StickyEnabled bool     `json:"sticky_enabled"`
	StickyKey     string   `json:"sticky_key,omitempty"`
	CanaryURL     string   `json:"canary_backend"`
	CanaryPercent float64  `json:"canary_percent"`
	Backends      []string `json:"backends"`
	// Rules are the backend rules new backends start under (SetRules).
	Rules backendactor.Rules `json:"-"`
}

// Status asks the actor for its settings.
func (s *Scheduler) Status(ctx context.Context) (Status, error) {
	return ask(ctx, s, func(c chan<- Status) any { return statusReq{c} })
}

// Stop stops every backend actor and then the scheduler.
func (s *Scheduler) Stop(ctx context.Context) error {
	hs := s.Picker().all
	if err := s.ref.StopWait(ctx); err != nil {
		return err
	}
	for _, h := range hs {
		h.Stop()
	}
	for _, h := range hs {
		select {
		case <-h.Done():
		case <-ctx.Done():
			return fmt.Errorf("scheduler: stopping backend %s: %w", h.URL(), ctx.Err())
		}
	}
	return nil
}

// The scheduler actor's messages.
type (
	addBackend struct {
		spec  Spec
		reply chan<- result
	}
	removeBackend struct {
		url   string
		reply chan<- result
	}
	setPolicy struct {
		policy        string
		stickyEnabled bool
		stickyKey     string
		reply         chan<- error
	}
	setCanary struct {
		url     string
		percent float64
		reply   chan<- error
	}
	statusReq      struct{ reply chan<- Status }
	backendChanged struct{ h *backendactor.Handle }
)

// state is the scheduler actor's private state.
type state struct {
	pub       *Scheduler
	cfg       Config
	backends  []*backendactor.Handle
	policy    string
	kind      policyKind
	sticky    stickyKey
	canaryURL string
	canaryPct float64
	cursor    *atomic.Uint64
}

// Receive is the table of contents of the scheduler actor.
func (s *state) Receive(msg any) {
	switch m := msg.(type) {
	case backendChanged:
		// Only wrr bakes weights into the picker; the other policies read
		// eligibility, EWMA and warm-up live from the snapshots.
		if s.kind != kindWRR {
			return
		}
	case addBackend:
		m.reply <- s.add(m.spec)
	case removeBackend:
		i := slices.IndexFunc(s.backends, func(h *backendactor.Handle) bool { return h.URL() == m.url })
		if i < 0 {
			m.reply <- result{err: fmt.Errorf("%w: %s", ErrNotFound, m.url)}
			return
		}
		h := s.backends[i]
		s.backends = slices.Delete(s.backends, i, i+1)
		if s.canaryURL == m.url {
			s.canaryURL, s.canaryPct = "", 0
		}
		s.rebuild()
		m.reply <- result{h: h}
		return
	case setPolicy:
		err := s.setPolicy(m.policy, m.stickyEnabled, m.stickyKey)
		if err == nil {
			s.rebuild()
		}
		m.reply <- err
		return
	case setCanary:
		err := s.setCanary(m.url, m.percent)
		if err == nil {
			s.rebuild()
		}
		m.reply <- err
		return
	case statusReq:
		m.reply <- s.status()
		return
	case setRules:
		s.cfg.Backend = s.cfg.Backend.WithRules(m.rules)
		m.reply <- slices.Clone(s.backends)
		return
	default:
		s.cfg.Logger.Warn("scheduler: unknown message", "type", fmt.Sprintf("%T", msg))
		return
	}
	s.rebuild()
}

// Tick rebuilds as a backstop in case a change notice met a full mailbox.
func (s *state) Tick(time.Time) { s.rebuild() }

func (s *state) add(spec Spec) result {
	if slices.ContainsFunc(s.backends, func(h *backendactor.Handle) bool { return h.URL() == spec.URL }) {
		return result{err: fmt.Errorf("%w: %s", ErrExists, spec.URL)}
	}
	c := s.cfg.Backend
	c.URL, c.Weight, c.MaxInflight, c.SkipWarmup = spec.URL, max(spec.Weight, 1), spec.MaxInflight, spec.Initial
	c.Name = s.backendName(spec.URL)
	c.Protocol, c.TLS = spec.Protocol, spec.TLS
	c.Label, c.JoinCause = spec.Name, spec.Cause
	c.StartUnhealthy = c.StartUnhealthy && !spec.Initial
	c.Logger = s.cfg.Logger
	ref := s.pub.ref
	c.OnChange = func(h *backendactor.Handle) { _ = ref.Tell(backendChanged{h}) }
	h := backendactor.New(s.cfg.Registry, c)
	s.backends = append(s.backends, h)
	s.rebuild()
	return result{h: h}
}

func (s *state) setPolicy(policy string, stickyEnabled bool, stickyKey string) error {
	kinds := map[string]policyKind{RR: kindRR, WRR: kindWRR, LC: kindLC, P2CEWMA: kindP2C, "": kindP2C}
	k, ok := kinds[policy]
	if !ok {
		return fmt.Errorf("%w: policy %q: want rr, wrr, lc or p2c-ewma", ErrInvalid, policy)
	}
	sk, err := parseSticky(stickyEnabled, stickyKey)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if policy == "" {
		policy = P2CEWMA
	}
	s.policy, s.kind, s.sticky = policy, k, sk
	return nil
}

func (s *state) setCanary(url string, pct float64) error {
	if url == "" {
		s.canaryURL, s.canaryPct = "", 0
		return nil
	}
	if !(pct >= 0 && pct <= 100) {
		return fmt.Errorf("%w: canary percent must be between 0 and 100, got %v", ErrInvalid, pct)
	}
	if !slices.ContainsFunc(s.backends, func(h *backendactor.Handle) bool { return h.URL() == url }) {
		return fmt.Errorf("%w: canary backend %s", ErrNotFound, url)
	}
	s.canaryURL, s.canaryPct = url, pct
	return nil
}

func (s *state) status() Status {
	st := Status{Pool: s.pub.name, Policy: s.policy, StickyEnabled: s.sticky.kind != stickyOff, StickyKey: s.sticky.String(),
		CanaryURL: s.canaryURL, CanaryPercent: s.canaryPct, Rules: s.cfg.Backend.Rules()}
	for _, h := range s.backends {
		st.Backends = append(st.Backends, h.URL())
	}
	return st
}

// rebuild publishes a new Picker from the current set and settings.
func (s *state) rebuild() {
	p := &Picker{
		policy: s.kind, name: s.policy, all: slices.Clone(s.backends),
		cursor: s.cursor, sticky: s.sticky, rnd: s.cfg.Rand, now: s.cfg.Now,
	}
	for _, h := range s.backends {
		if s.canaryPct > 0 && h.URL() == s.canaryURL {
			p.canary, p.canaryPct = h, s.canaryPct
			continue
		}
		p.backends = append(p.backends, h)
	}
	if len(p.backends) == 0 && p.canary != nil { // only the canary is left: it takes everything
		p.backends, p.canary = []*backendactor.Handle{p.canary}, nil
	}
	p.hashes = make([]uint64, len(p.backends))
	for i, h := range p.backends {
		p.hashes[i] = mix64(fnv1a(h.URL()))
	}
	if s.kind == kindWRR && len(p.backends) > 0 {
		p.seq = smoothCycle(cycleWeights(p.backends))
	}
	s.pub.picker.Store(p)
	s.pub.ref.SetState(fmt.Sprintf("policy=%s backends=%d sticky=%s canary=%s/%v",
		s.policy, len(s.backends), s.sticky, s.canaryURL, s.canaryPct))
}

// cycleWeights turns effective weights into small integers for smoothCycle:
// weights in tenths while any backend warms up, reduced by their gcd so the
// cycle stays short.
func cycleWeights(hs []*backendactor.Handle) []int {
	ws := make([]int, len(hs))
	warming := false
	for _, h := range hs {
		warming = warming || h.Snapshot().WarmFactor < 1
	}
	g := 0
	for i, h := range hs {
		s := h.Snapshot()
		w := s.Weight
		if warming {
			w = max(int(s.EffectiveWeight()*10+0.5), 1)
		}
		ws[i] = w
		g = gcd(g, w)
	}
	for i := range ws {
		ws[i] /= g
	}
	return ws
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
