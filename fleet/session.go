package fleet

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/connectivity"
)

// errResync ends a session whose Sink must be given the state again.
var errResync = errors.New("resync asked after the sink panicked")

// startSession runs the session loop on a goroutine the actor owns.
func (s *linkState) startSession() {
	ss := &session{link: s.link, ref: s.ref, ctx: s.ctx, resync: s.resync}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ss.run()
	}()
}

// session is the link's I/O: it dials, lists, watches and keeps the
// registration alive, and sends what it reads to the actor. One runs at a
// time, so what it sends arrives in the order it read it.
type session struct {
	link *Link
	ref  interface {
		Send(context.Context, any) error
	}
	ctx    context.Context
	resync <-chan struct{}
}

// run connects again and again, with backoff, until the link stops.
func (ss *session) run() {
	o := ss.link.opts
	wait := o.MinBackoff
	for ss.ctx.Err() == nil {
		began := time.Now()
		err := ss.once()
		if ss.ctx.Err() != nil {
			return
		}
		ss.link.lastErr.Store(&err)
		ss.tell(connState{up: false, err: err, at: time.Now()})
		o.Logger.Warn("fleet: etcd session ended; reconnecting", "err", err, "retry_in", wait.String())
		if time.Since(began) > 4*o.MaxBackoff {
			wait = o.MinBackoff // it had been healthy: start the backoff over
		}
		jitter := 1 + 0.2*(2*rand.Float64()-1)
		select {
		case <-ss.ctx.Done():
			return
		case <-time.After(time.Duration(float64(wait) * jitter)):
		}
		wait = min(2*wait, o.MaxBackoff)
	}
}

// tell hands msg to the actor, waiting for room; it gives up only when the
// link stops.
func (ss *session) tell(msg any) { _ = ss.ref.Send(ss.ctx, msg) }

// once is one session: a fresh client, a list, a watch from past it and a
// registration; it returns why it ended.
func (ss *session) once() (err error) {
	o := ss.link.opts
	cli, err := clientv3.New(ss.link.cfg) // with a login, this contacts etcd and gets a token
	if err != nil {
		return fmt.Errorf("connect to %v: %w", o.Etcd.Endpoints, err)
	}
	if err := awaitReady(ss.ctx, cli, o.Etcd.DialTimeout.D()); err != nil {
		cli.Close()
		return fmt.Errorf("connect to %v: %w", o.Etcd.Endpoints, err)
	}
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ss.ctx))
	lost := make(chan error, 1)
	done := make(chan struct{})
	go func() { defer close(done); watchConn(ctx, cli, lost) }()
	defer func() {
		ss.link.live.Store(nil)
		cancel()
		<-done
		cli.Close()
	}()

	rev, err := ss.list(ctx, cli)
	if err != nil {
		return err
	}
	wch, err := ss.watch(ctx, cli, rev)
	if err != nil {
		return err
	}
	reg, err := ss.register(ctx, cli)
	if err != nil {
		return err
	}
	defer reg.revokeIfStopping(ss.ctx)

	ss.link.live.Store(cli)
	ss.tell(connState{up: true, at: time.Now()})
	o.Logger.Info("fleet: etcd session up", "endpoints", o.Etcd.Endpoints, "revision", rev)
	heartbeat := time.NewTicker(o.Heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-ss.ctx.Done():
			return ss.ctx.Err()
		case err := <-lost:
			return err
		case <-ss.resync:
			return errResync
		case <-heartbeat.C:
			if err := ss.heartbeat(ctx, cli); err != nil {
				return err
			}
		case _, ok := <-reg.keepalive:
			if ok {
				continue
			}
			// The lease expired (a partition longer than its TTL) or etcd
			// forgot it; register again on this session.
			o.Logger.Warn("fleet: registration lease lost; registering again", "replica", o.Name)
			if reg, err = ss.register(ctx, cli); err != nil {
				return err
			}
		case wr, ok := <-wch:
			if !ok {
				return errors.New("watch closed")
			}
			if err := watchEnded(wr); err != nil {
				return err
			}
			if wr.IsProgressNotify() {
				continue
			}
			ss.deliver(wr.Events)
		}
	}
}

// heartbeat reads this replica's registration key, linearizably (so a
// member without a leader fails it). Any failure ends the session.
func (ss *session) heartbeat(ctx context.Context, cli *clientv3.Client) error {
	o := ss.link.opts
	rctx, cancel := context.WithTimeout(ctx, o.RequestTimeout)
	defer cancel()
	if _, err := cli.Get(rctx, o.Etcd.Prefix+ReplicasPrefix+o.Name, clientv3.WithKeysOnly()); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	return nil
}

// list reads the whole prefix at one revision and hands it to the actor.
func (ss *session) list(ctx context.Context, cli *clientv3.Client) (int64, error) {
	o := ss.link.opts
	rctx, cancel := context.WithTimeout(ctx, o.RequestTimeout)
	defer cancel()
	resp, err := cli.Get(rctx, o.Etcd.Prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("list %s: %w", o.Etcd.Prefix, err)
	}
	kvs := make([]KV, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		kvs = append(kvs, ss.kv(kv))
	}
	ss.tell(listed{kvs: kvs, rev: resp.Header.Revision})
	if o.afterList != nil {
		o.afterList()
	}
	return resp.Header.Revision, nil
}

// watch opens the watch from rev+1 and waits until etcd has created it.
// If rev+1 is already compacted (many writes and a compaction between the
// list and the watch), it lists again and retries, a few times.
func (ss *session) watch(ctx context.Context, cli *clientv3.Client, rev int64) (clientv3.WatchChan, error) {
	o := ss.link.opts
	for attempt := 0; ; attempt++ {
		wch := cli.Watch(ctx, o.Etcd.Prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1),
			clientv3.WithCreatedNotify(), clientv3.WithProgressNotify())
		timer := time.NewTimer(o.RequestTimeout)
		var wr clientv3.WatchResponse
		var ok bool
		select {
		case wr, ok = <-wch:
			timer.Stop()
		case <-timer.C:
			return nil, fmt.Errorf("watch %s: not created within %s", o.Etcd.Prefix, o.RequestTimeout)
		}
		switch {
		case !ok:
			return nil, fmt.Errorf("watch %s: closed before it was created", o.Etcd.Prefix)
		case wr.CompactRevision != 0 && attempt < 3:
			o.Logger.Info("fleet: history compacted past the list; listing again",
				"listed", rev, "compacted", wr.CompactRevision)
			var err error
			if rev, err = ss.list(ctx, cli); err != nil {
				return nil, err
			}
			continue
		}
		if err := watchEnded(wr); err != nil {
			return nil, fmt.Errorf("watch %s: %w", o.Etcd.Prefix, err)
		}
		if len(wr.Events) > 0 { // etcd may send events with the created answer
			ss.deliver(wr.Events)
		}
		return wch, nil
	}
}

// watchEnded says why a watch response ends the watch, or nil.
func watchEnded(wr clientv3.WatchResponse) error {
	switch {
	case wr.CompactRevision != 0:
		return fmt.Errorf("watch fell behind: history compacted up to revision %d", wr.CompactRevision)
	case wr.Err() != nil:
		return fmt.Errorf("watch: %w", wr.Err())
	case wr.Canceled:
		return errors.New("watch canceled by etcd")
	}
	return nil
}

// deliver groups events by revision (one revision is one transaction) and
// hands each group to the actor.
func (ss *session) deliver(evs []*clientv3.Event) {
	for i := 0; i < len(evs); {
		rev := evs[i].Kv.ModRevision
		var group []Event
		for ; i < len(evs) && evs[i].Kv.ModRevision == rev; i++ {
			ev := Event{Kind: EventPut, KV: ss.kv(evs[i].Kv)}
			if evs[i].Type == mvccpb.DELETE {
				ev.Kind = EventDelete
			}
			group = append(group, ev)
		}
		ss.tell(changed{rev: rev, events: group})
	}
}

func (ss *session) kv(kv *mvccpb.KeyValue) KV {
	return KV{
		Key: string(kv.Key[len(ss.link.opts.Etcd.Prefix):]), Value: kv.Value,
		ModRevision: kv.ModRevision, CreateRevision: kv.CreateRevision,
	}
}

// awaitReady waits up to d for the client's connection to be ready, so
// that an etcd that is down costs a reconnection attempt dial_timeout, not
// a request timeout, and says so.
func awaitReady(ctx context.Context, cli *clientv3.Client, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	conn := cli.ActiveConnection()
	conn.Connect()
	for {
		st := conn.GetState()
		if st == connectivity.Ready {
			return nil
		}
		if !conn.WaitForStateChange(ctx, st) {
			return fmt.Errorf("no connection within %s (%s)", d, st)
		}
	}
}

// watchConn reports on lost when the client's connection, once ready,
// leaves the ready state: the link is then unavailable until a new session
// has listed again. It returns when ctx ends.
func watchConn(ctx context.Context, cli *clientv3.Client, lost chan<- error) {
	conn := cli.ActiveConnection()
	st := conn.GetState()
	ready := st == connectivity.Ready
	for conn.WaitForStateChange(ctx, st) {
		st = conn.GetState()
		if st == connectivity.Ready {
			ready = true
			continue
		}
		if ready {
			lost <- fmt.Errorf("connection to %s lost (now %s)", cli.Endpoints(), st)
			return
		}
	}
}
