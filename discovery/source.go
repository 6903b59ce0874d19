package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/lbd/lbd/actor"
	"github.com/lbd/lbd/config"
)

// Defaults of the Config knobs left at zero.
const (
	DefaultJitter         = 0.1
	DefaultTimeout        = 2 * time.Second
	DefaultDeliverTimeout = 10 * time.Second
	DefaultTickEvery      = 100 * time.Millisecond
)

// Config configures one source.
type Config struct {
	// Source is the config entry; New validates it (config.Discovery.Validate).
	Source config.Discovery
	// Pool is the pool the members join; "" means "default".
	Pool string
	// Apply is the sink: the routing-config owner. It gets the full set at
	// the first believed answer and at every change, on a goroutine of the
	// source's; an error makes the source offer the latest set again on its
	// next tick. It must return when ctx ends: Stop cancels ctx and waits.
	Apply func(ctx context.Context, u Update) error

	Metrics  *Metrics        // nil: no metrics
	Registry *actor.Registry // for /debug/actors; nil: none
	Logger   *slog.Logger    // nil: slog.Default()
	Rand     *rand.Rand      // draws the jitter; nil: seeded from the runtime

	// Jitter is the fraction of each wait that may be taken off at random;
	// 0 means DefaultJitter, a negative value none (tests).
	Jitter float64
	// Timeout bounds one exchange with one DNS server (DefaultTimeout).
	Timeout time.Duration
	// DeliverTimeout bounds one call of Apply (DefaultDeliverTimeout).
	DeliverTimeout time.Duration
	// ResolvConf is read when Source.Resolver is empty (DefaultResolvConf).
	ResolvConf string
	// TickEvery is how often the actor looks at its schedule (DefaultTickEvery).
	TickEvery time.Duration
}

// Source is one running DNS source: an actor that looks its name up, keeps
// the last good member set and hands every change to its sink.
type Source struct {
	name, pool string
	ref        *actor.Ref
	status     atomic.Pointer[Status]
}

// New validates c and starts the source; its first lookup is due at once.
func New(c Config) (*Source, error) {
	if err := c.Source.Validate(); err != nil {
		return nil, fmt.Errorf("discovery %s: %w", c.Source.SourceName(), err)
	}
	if c.Apply == nil {
		return nil, errors.New("discovery: a source needs a sink (Config.Apply)")
	}
	c.Source.DNS, _ = config.NormalizeDNSName(c.Source.DNS)
	if c.Pool == "" {
		c.Pool = "default"
	}
	switch {
	case c.Jitter == 0:
		c.Jitter = DefaultJitter
	case c.Jitter < 0:
		c.Jitter = 0
	}
	c.Jitter = min(c.Jitter, 1)
	c.Timeout = cmpOr(c.Timeout, DefaultTimeout)
	c.DeliverTimeout = cmpOr(c.DeliverTimeout, DefaultDeliverTimeout)
	c.TickEvery = cmpOr(c.TickEvery, DefaultTickEvery)
	if c.ResolvConf == "" {
		c.ResolvConf = DefaultResolvConf
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Rand == nil {
		c.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}

	src := &Source{name: c.Source.SourceName(), pool: c.Pool}
	s := &sourceState{
		cfg: c, src: src, name: src.name,
		client: client{resolver: c.Source.Resolver, resolvConf: c.ResolvConf, timeout: c.Timeout},
		sched:  schedule{refresh: c.Source.Refresh.D(), floor: config.MinDiscoveryRefresh, jitter: c.Jitter, tick: c.TickEvery},
		met:    c.Metrics.source(c.Pool, src.name),
		log:    c.Logger.With("source", src.name, "pool", c.Pool),
		due:    time.Now(),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.publish()
	src.ref = actor.Spawn(c.Registry, s, actor.Options{
		Name: c.Pool + "/" + src.name, Kind: "discovery", Mailbox: 16, TickEvery: c.TickEvery, Logger: c.Logger,
	})
	return src, nil
}

func cmpOr(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Name is the source's name, as in Update.Source.
func (s *Source) Name() string { return s.name }

// Pool is the pool its members join.
func (s *Source) Pool() string { return s.pool }

// Status returns what the source last published. Never nil.
func (s *Source) Status() *Status { return s.status.Load() }

// Stop stops the source, cancels its lookup and delivery in flight, waits
// for them (or for ctx) and removes its metric series. The sink hears
// nothing more from it.
func (s *Source) Stop(ctx context.Context) error { return s.ref.StopWait(ctx) }
