package fleet

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lbd/lbd/actor"
)

// Messages from the session to the actor, in the order it read them.
type (
	// listed is a whole list of the prefix at rev (registry included).
	listed struct {
		kvs []KV
		rev int64
	}
	// changed is one revision's events.
	changed struct {
		rev    int64
		events []Event
	}
	// connState says the session came up or went down (err the cause).
	connState struct {
		up  bool
		err error
		at  time.Time
	}
)

// linkState is the actor's state; only its goroutine touches it.
type linkState struct {
	link     *Link
	ref      *actor.Ref
	applied  int64
	synced   bool
	up       bool
	changes  uint64
	resyncs  uint64
	lastErr  string
	lastAt   time.Time
	replicas map[string]Replica

	ctx    context.Context // the session's life: ends when the actor stops
	cancel context.CancelFunc
	wg     sync.WaitGroup
	resync chan struct{} // asks the session to list again (after a Sink panic)
}

func (s *linkState) Bind(r *actor.Ref) { s.ref = r }

// Receive is the table of contents: the session's reports, in order.
func (s *linkState) Receive(msg any) {
	switch m := msg.(type) {
	case listed:
		s.reset(m)
	case changed:
		s.apply(m)
	case connState:
		s.conn(m)
	default:
		s.link.opts.Logger.Warn("fleet link: unknown message", "type", fmt.Sprintf("%T", msg))
	}
	s.publish()
}

func (s *linkState) reset(m listed) {
	clear(s.replicas)
	state := make([]KV, 0, len(m.kvs))
	for _, kv := range m.kvs {
		if name, ok := strings.CutPrefix(kv.Key, ReplicasPrefix); ok {
			s.register(name, kv.Value)
			continue
		}
		state = append(state, kv)
	}
	s.link.opts.Sink.Reset(state, m.rev)
	s.resyncs++
	s.link.metrics.resyncs.Inc()
	s.advance(m.rev)
	if !s.synced {
		s.synced = true
		close(s.link.synced)
	}
}

func (s *linkState) apply(m changed) {
	if m.rev <= s.applied {
		return // cannot happen: the session lists before it watches from past the list
	}
	events := m.events[:0:0]
	for _, ev := range m.events {
		if name, ok := strings.CutPrefix(ev.KV.Key, ReplicasPrefix); ok {
			if ev.Kind == EventDelete {
				delete(s.replicas, name)
			} else {
				s.register(name, ev.KV.Value)
			}
			continue
		}
		events = append(events, ev)
	}
	if len(events) > 0 {
		s.link.opts.Sink.Apply(m.rev, events)
		s.changes += uint64(len(events))
		s.link.metrics.changes.Add(float64(len(events)))
	}
	s.advance(m.rev)
}

// register records a replica's registration; a value that does not parse
// still lists the replica, by its key.
func (s *linkState) register(name string, value []byte) {
	r, err := decodeReplica(value)
	if err != nil {
		s.link.opts.Logger.Warn("fleet: unreadable replica registration", "replica", name, "err", err)
	}
	r.Name = name
	s.replicas[name] = r
}

func (s *linkState) advance(rev int64) {
	s.applied = rev
	s.link.metrics.revision.Set(float64(rev))
	old := s.link.progress.Load()
	s.link.progress.Store(&progress{rev: rev, next: make(chan struct{})})
	close(old.next)
}

func (s *linkState) conn(m connState) {
	s.up = m.up
	if m.err != nil {
		s.lastErr, s.lastAt = m.err.Error(), m.at
	}
	s.link.metrics.connected.Set(map[bool]float64{false: 0, true: 1}[m.up])
}

func (s *linkState) publish() {
	o := s.link.opts
	st := &Status{
		Self: SelfStatus{
			Name: o.Name, Connected: s.up, Synced: s.synced, Revision: s.applied,
			ChangesApplied: s.changes, Resyncs: s.resyncs, LastError: s.lastErr, LastErrorAt: s.lastAt,
		},
		Etcd:     EtcdStatus{Endpoints: slices.Clone(o.Etcd.Endpoints), Prefix: o.Etcd.Prefix},
		Replicas: make([]Replica, 0, len(s.replicas)),
	}
	for _, r := range s.replicas {
		st.Replicas = append(st.Replicas, r)
	}
	slices.SortFunc(st.Replicas, func(a, b Replica) int { return strings.Compare(a.Name, b.Name) })
	s.link.status.Store(st)
	if s.ref != nil {
		s.ref.SetState(fmt.Sprintf("connected=%t revision=%d replicas=%d", s.up, s.applied, len(s.replicas)))
	}
}

// Restart runs after the Sink panicked: what it holds is unknown, so the
// session lists again and the Sink gets a fresh Reset.
func (s *linkState) Restart() {
	select {
	case s.resync <- struct{}{}:
	default: // one is already pending
	}
}

// Stopped ends the session and waits for its goroutines, then wakes every
// WaitApplied.
func (s *linkState) Stopped() {
	s.cancel()
	s.wg.Wait()
	s.link.metrics.connected.Set(0)
	old := s.link.progress.Load()
	s.link.progress.Store(&progress{rev: old.rev, next: make(chan struct{}), stopped: true})
	close(old.next)
}
