// Package feed is a tool for actors and the request path: a fan-out of
// encoded events to live subscribers (the server-sent-event streams of
// /admin/tap and /admin/events?follow=1) that never makes the publisher
// wait.
//
// A Hub publishes to its subscribers without a lock and without blocking:
// the subscriber list is an immutable slice behind an atomic pointer,
// replaced (under a mutex only writers take) when someone subscribes or
// leaves; each subscriber has a bounded buffer, and an event that finds it
// full is dropped and counted, for the subscriber and for the hub. A
// publisher with no subscribers pays one atomic load (Listening).
//
// Who talks to it: the proxy publishes tap records from request
// goroutines; the events actor publishes transitions from its goroutine;
// the admin API subscribes for each stream and reads until the client
// leaves, the stream's limit is reached or the hub closes.
package feed

import (
	"errors"
	"sync"
	"sync/atomic"
)

// ErrClosed is returned by Subscribe once the hub is closed.
var ErrClosed = errors.New("feed closed")

// Hub fans events of type T out to subscribers. The zero value is not
// usable; call New.
type Hub[T any] struct {
	mu      sync.Mutex // writers of subs only; Publish never takes it
	subs    atomic.Pointer[[]*Sub[T]]
	closed  bool
	dropped atomic.Uint64
	sent    atomic.Uint64
}

// New returns a hub with no subscribers.
func New[T any]() *Hub[T] {
	h := &Hub[T]{}
	h.subs.Store(&[]*Sub[T]{})
	return h
}

// Sub is one subscriber: the events its filter accepted, encoded, in a
// bounded buffer.
type Sub[T any] struct {
	hub     *Hub[T]
	match   func(T) bool
	c       chan []byte
	done    chan struct{}
	once    sync.Once
	dropped atomic.Uint64
}

// Subscribe adds a subscriber that receives the events match accepts (nil
// accepts all), with room for buf of them (at least 1) before it drops.
func (h *Hub[T]) Subscribe(match func(T) bool, buf int) (*Sub[T], error) {
	s := &Sub[T]{hub: h, match: match, c: make(chan []byte, max(buf, 1)), done: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	old := *h.subs.Load()
	next := make([]*Sub[T], len(old), len(old)+1)
	copy(next, old)
	next = append(next, s)
	h.subs.Store(&next)
	return s, nil
}

// Listening reports whether anyone subscribes: one atomic load, for the
// request path to skip all tap work when no one does.
func (h *Hub[T]) Listening() bool { return len(*h.subs.Load()) > 0 }

// Listeners returns the number of subscribers.
func (h *Hub[T]) Listeners() int { return len(*h.subs.Load()) }

// Wants reports whether some subscriber's filter accepts v.
func (h *Hub[T]) Wants(v T) bool {
	for _, s := range *h.subs.Load() {
		if s.match == nil || s.match(v) {
			return true
		}
	}
	return false
}

// Publish offers v to every subscriber whose filter accepts it; encode
// runs once, only if one of them has room. A subscriber whose buffer is
// full misses the event (counted); Publish never waits. It returns how
// many subscribers got the event.
func (h *Hub[T]) Publish(v T, encode func(T) []byte) int {
	var b []byte
	n := 0
	for _, s := range *h.subs.Load() {
		if s.match != nil && !s.match(v) {
			continue
		}
		if len(s.c) == cap(s.c) { // full: spare the encoding when no one can take it
			s.dropped.Add(1)
			h.dropped.Add(1)
			continue
		}
		if b == nil {
			b = encode(v)
		}
		select {
		case s.c <- b:
			n++
		default:
			s.dropped.Add(1)
			h.dropped.Add(1)
		}
	}
	if n > 0 {
		h.sent.Add(uint64(n))
	}
	return n
}

// Dropped counts the events subscribers missed because their buffer was full.
func (h *Hub[T]) Dropped() uint64 { return h.dropped.Load() }

// Sent counts the events handed to subscribers.
func (h *Hub[T]) Sent() uint64 { return h.sent.Load() }

// Close ends every subscription and refuses new ones.
func (h *Hub[T]) Close() {
	h.mu.Lock()
	subs := *h.subs.Load()
	h.closed = true
	h.subs.Store(&[]*Sub[T]{})
	h.mu.Unlock()
	for _, s := range subs {
		s.once.Do(func() { close(s.done) })
	}
}

// C is the subscriber's events, encoded. It is never closed: a reader
// selects on Done as well.
func (s *Sub[T]) C() <-chan []byte { return s.c }

// Done is closed when the subscription ends (Close, or the hub's Close).
func (s *Sub[T]) Done() <-chan struct{} { return s.done }

// Dropped counts the events this subscriber missed.
func (s *Sub[T]) Dropped() uint64 { return s.dropped.Load() }

// Close leaves the hub. Events already buffered stay readable from C.
func (s *Sub[T]) Close() {
	h := s.hub
	h.mu.Lock()
	old := *h.subs.Load()
	next := make([]*Sub[T], 0, len(old))
	for _, x := range old {
		if x != s {
			next = append(next, x)
		}
	}
	h.subs.Store(&next)
	h.mu.Unlock()
	s.once.Do(func() { close(s.done) })
}
