package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/lbd/lbd/actor"
	"github.com/lbd/lbd/config"
)

// Options configure a Link.
type Options struct {
	// Etcd is the fleet.etcd section: endpoints, prefix, timeouts, login.
	Etcd config.Etcd
	// Name is this replica's name (config.Fleet.ReplicaName).
	Name string
	// AdminAddress and Version go into the registration.
	AdminAddress, Version string
	// Sink receives the state; required.
	Sink Sink
	// LeaseTTL is the registration's lease (default 10s): a replica that
	// stops without saying so leaves the list within about this long.
	LeaseTTL time.Duration
	// RequestTimeout bounds each list, registration and commit (default
	// 5s, and never less than dial_timeout).
	RequestTimeout time.Duration
	// Heartbeat is how often a live session reads its registration key
	// (default 5s): it proves etcd answers with a leader, and it keeps the
	// session's auth token in use (etcd expires simple tokens unused for
	// --auth-token-ttl; the client fetches a new one when that happens).
	Heartbeat time.Duration
	// MinBackoff and MaxBackoff bound the wait between reconnection
	// attempts, which doubles from min to max (defaults 100ms and 5s) with
	// ±20% jitter so that replicas do not reconnect in step.
	MinBackoff, MaxBackoff time.Duration
	Registry               *actor.Registry
	Registerer             prometheus.Registerer // nil: no metrics
	Logger                 *slog.Logger

	// afterList, in tests, runs between a list and the watch that follows.
	afterList func()
}

func (o *Options) fill() error {
	switch {
	case o.Sink == nil:
		return errors.New("fleet: a Sink is required")
	case o.Name == "" || strings.Contains(o.Name, "/"):
		return fmt.Errorf("fleet: replica name %q must be one non-empty key segment", o.Name)
	case len(o.Etcd.Endpoints) == 0:
		return errors.New("fleet: no etcd endpoints")
	case !strings.HasSuffix(o.Etcd.Prefix, "/"):
		return fmt.Errorf("fleet: prefix %q must end with /", o.Etcd.Prefix)
	}
	if o.Etcd.DialTimeout <= 0 {
		o.Etcd.DialTimeout = config.Duration(2 * time.Second)
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 10 * time.Second
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 5 * time.Second
	}
	o.RequestTimeout = max(o.RequestTimeout, o.Etcd.DialTimeout.D())
	if o.Heartbeat <= 0 {
		o.Heartbeat = 5 * time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(5*time.Second, o.MinBackoff)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// Link is one replica's link to etcd. Its methods are safe for concurrent use.
type Link struct {
	opts    Options
	ref     *actor.Ref
	cfg     clientv3.Config // the etcd client's config, read once at New
	metrics *metrics

	status   atomic.Pointer[Status]
	progress atomic.Pointer[progress]
	synced   chan struct{}                   // closed at the first Reset
	live     atomic.Pointer[clientv3.Client] // the live session's client; nil without one
	lastErr  atomic.Pointer[error]           // the session's last failure, for ErrUnavailable's cause
	started  time.Time                       // for the registration
}

// progress is the applied revision, published with a channel closed when
// it moves on: WaitApplied waits on it without a message per waiter.
type progress struct {
	rev     int64
	next    chan struct{}
	stopped bool
}

// New reads the credentials, starts the link's actor and its session, and
// returns at once: the session connects in the background (Synced tells
// when the state has been listed). An unreadable password or certificate
// file is an error here, since no retry can fix it.
func New(o Options) (*Link, error) {
	if err := o.fill(); err != nil {
		return nil, err
	}
	cfg, err := clientConfig(o.Etcd)
	if err != nil {
		return nil, err
	}
	l := &Link{opts: o, cfg: cfg, synced: make(chan struct{}), started: time.Now().UTC()}
	if l.metrics, err = newMetrics(o.Registerer); err != nil {
		return nil, err
	}
	l.progress.Store(&progress{next: make(chan struct{})})
	s := &linkState{link: l, replicas: map[string]Replica{}, resync: make(chan struct{}, 1)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.publish()
	l.ref = actor.Spawn(o.Registry, s, actor.Options{Name: "fleet-link", Kind: "fleet", Mailbox: 256, Logger: o.Logger})
	s.startSession()
	return l, nil
}

// Status returns what the link last published. It is never nil.
func (l *Link) Status() *Status { return l.status.Load() }

// Replicas returns the live replicas, sorted by name.
func (l *Link) Replicas() []Replica { return slices.Clone(l.status.Load().Replicas) }

// Synced is closed once the state has been listed and handed to the Sink
// for the first time.
func (l *Link) Synced() <-chan struct{} { return l.synced }

// WaitApplied waits until the link has handed revision rev (or a later
// one) to its Sink, or ctx ends, or the link stops (actor.ErrStopped).
func (l *Link) WaitApplied(ctx context.Context, rev int64) error {
	for {
		p := l.progress.Load()
		switch {
		case p.rev >= rev:
			return nil
		case p.stopped:
			return fmt.Errorf("fleet: waiting for revision %d: %w", rev, actor.ErrStopped)
		}
		select {
		case <-p.next:
		case <-ctx.Done():
			return fmt.Errorf("fleet: revision %d not applied yet (at %d): %w", rev, p.rev, ctx.Err())
		}
	}
}

// Stop ends the session (revoking the registration, so the replica leaves
// the list at once), stops the actor and waits for both.
func (l *Link) Stop(ctx context.Context) error { return l.ref.StopWait(ctx) }
