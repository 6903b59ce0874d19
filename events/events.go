// Package events runs the events actor: the owner of lbd's history of
// backend transitions — state (healthy, warming, unhealthy, ejected,
// draining, added, removed), breaker and ejection changes — each with its
// cause in words ("probe GET /healthz answered 500 (3 of fall 3)",
// "admin drain", "breaker: 5 consecutive failures"). It keeps the last
// Capacity of them in a ring and streams new ones to followers
// (GET /admin/events?follow=1).
//
// Who talks to it: backend actors report their transitions by Tell
// (Record: never waits; a full mailbox drops the event and counts it in
// /debug/actors), the admin API asks for the history (Recent) and follows
// (Follow). The request path never does.
package events

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/lbd/lbd/actor"
	"github.com/lbd/lbd/feed"
)

// Kinds of transition.
const (
	KindState   = "state"   // the backend's state: healthy, warming, unhealthy, ejected, draining; added, removed
	KindBreaker = "breaker" // the circuit breaker: closed, open, half_open
)

// Event is one transition of one backend.
type Event struct {
	// Seq numbers the events of this lbd from 1, in the order recorded
	// (the SSE stream's event id).
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Pool    string    `json:"pool"`
	Backend string    `json:"backend"`
	Name    string    `json:"name,omitempty"`
	Kind    string    `json:"kind"`
	From    string    `json:"from"`
	To      string    `json:"to"`
	Cause   string    `json:"cause"`
}

// Filter selects events; empty fields match everything. Backend is a
// backend's URL or its name.
type Filter struct {
	Pool, Backend string
}

// Match reports whether e passes f.
func (f Filter) Match(e Event) bool {
	return (f.Pool == "" || f.Pool == e.Pool) &&
		(f.Backend == "" || f.Backend == e.Backend || (e.Name != "" && f.Backend == e.Name))
}

// DefaultCapacity is how many events the history keeps by default.
const DefaultCapacity = 1024

// Options configure New.
type Options struct {
	Capacity int // events kept (default DefaultCapacity)
	Mailbox  int // default 1024: a reload that changes every backend at once fits
	// FollowBuffer is each follower's buffer (default 256); a follower
	// that falls further behind misses events, counted.
	FollowBuffer int
	Registry     *actor.Registry
	Logger       *slog.Logger
	Now          func() time.Time // stamps events recorded without a time; default time.Now
}

// Log is the address of the events actor.
type Log struct {
	ref *actor.Ref
	hub *feed.Hub[Event]
}

// New starts the events actor.
func New(o Options) *Log {
	if o.Capacity <= 0 {
		o.Capacity = DefaultCapacity
	}
	if o.Mailbox <= 0 {
		o.Mailbox = 1024
	}
	if o.FollowBuffer <= 0 {
		o.FollowBuffer = 256
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	l := &Log{hub: feed.New[Event]()}
	s := &state{o: o, hub: l.hub, ring: make([]Event, o.Capacity)}
	l.ref = actor.Spawn(o.Registry, s, actor.Options{Name: "events", Kind: "events", Mailbox: o.Mailbox, Logger: o.Logger})
	return l
}

// The actor's messages.
type (
	recordMsg struct{ e Event }
	recentReq struct {
		f     Filter
		limit int
		reply chan<- []Event
	}
	followReq struct {
		f       Filter
		backlog int
		reply   chan<- followed
	}
	followed struct {
		history []Event
		sub     *feed.Sub[Event]
		err     error
	}
)

// Record adds e to the history and streams it to followers. It never
// waits: when the mailbox is full the event is dropped and counted.
func (l *Log) Record(e Event) { _ = l.ref.Tell(recordMsg{e}) }

// Recent returns the last limit events that pass f, oldest first (limit
// <= 0: all that are kept).
func (l *Log) Recent(ctx context.Context, f Filter, limit int) ([]Event, error) {
	return actor.Ask(ctx, l.ref, func(r chan<- []Event) any { return recentReq{f, limit, r} })
}

// Follow returns the last backlog events that pass f and a subscription
// to those recorded after them: nothing lost or repeated between the two.
// The caller closes the subscription.
func (l *Log) Follow(ctx context.Context, f Filter, backlog int) ([]Event, *feed.Sub[Event], error) {
	r, err := actor.Ask(ctx, l.ref, func(c chan<- followed) any { return followReq{f, backlog, c} })
	if err != nil {
		return nil, nil, err
	}
	return r.history, r.sub, r.err
}

// Dropped counts events followers missed because they fell behind.
func (l *Log) Dropped() uint64 { return l.hub.Dropped() }

// Ref is the actor's address.
func (l *Log) Ref() *actor.Ref { return l.ref }

// Stop ends every follow and stops the actor.
func (l *Log) Stop(ctx context.Context) error { return l.ref.StopWait(ctx) }

// Encode is the JSON form of an event, as the follow stream sends it.
func Encode(e Event) []byte {
	b, err := json.Marshal(e)
	if err != nil { // an Event has strings, numbers and a time: it always encodes
		panic(fmt.Sprintf("events: encoding %+v: %v", e, err))
	}
	return b
}

// state is the actor's: a ring of the last Capacity events.
type state struct {
	o    Options
	hub  *feed.Hub[Event]
	ref  *actor.Ref
	ring []Event
	n    uint64 // events recorded ever; the next one's Seq is n+1
}

func (s *state) Bind(r *actor.Ref) { s.ref = r }

// Receive is the table of contents of the events actor.
func (s *state) Receive(msg any) {
	switch m := msg.(type) {
	case recordMsg:
		s.record(m.e)
	case recentReq:
		m.reply <- s.recent(m.f, m.limit)
	case followReq:
		sub, err := s.hub.Subscribe(m.f.Match, s.o.FollowBuffer)
		m.reply <- followed{history: s.recent(m.f, m.backlog), sub: sub, err: err}
	default:
		if s.o.Logger != nil {
			s.o.Logger.Warn("events: unknown message", "type", fmt.Sprintf("%T", msg))
		}
	}
}

func (s *state) record(e Event) {
	s.n++
	e.Seq = s.n
	if e.Time.IsZero() {
		e.Time = s.o.Now()
	}
	s.ring[(s.n-1)%uint64(len(s.ring))] = e
	s.hub.Publish(e, Encode)
	if s.ref != nil {
		s.ref.SetState(fmt.Sprintf("recorded=%d kept=%d followers=%d", s.n, min(s.n, uint64(len(s.ring))), s.hub.Listeners()))
	}
}

// recent walks the ring from the newest event back, keeping up to limit
// that pass f, and returns them oldest first.
func (s *state) recent(f Filter, limit int) []Event {
	kept := min(s.n, uint64(len(s.ring)))
	if limit <= 0 || uint64(limit) > kept {
		limit = int(kept)
	}
	out := make([]Event, 0, limit)
	for i := uint64(0); i < kept && len(out) < limit; i++ {
		if e := s.ring[(s.n-1-i)%uint64(len(s.ring))]; f.Match(e) {
			out = append(out, e)
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// Stopped ends the follows: their streams close.
func (s *state) Stopped() { s.hub.Close() }

// SeqOf reads the Seq of an event Encode wrote, which it puts first: the
// id of the event in an SSE stream, without decoding the rest.
func SeqOf(b []byte) uint64 {
	const prefix = `{"seq":`
	if len(b) < len(prefix) || string(b[:len(prefix)]) != prefix {
		return 0
	}
	var n uint64
	for _, c := range b[len(prefix):] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + uint64(c-'0')
	}
	return n
}
