// Package actor is lbd's small actor runtime: a goroutine that owns some
// state, a bounded mailbox in front of it, supervision that survives a
// panicking handler, and a registry that reports every actor for
// /debug/actors.
//
// An actor's state is only ever touched by its own goroutine. Others send it
// messages: Tell for fire-and-forget commands (never blocks; a full mailbox is
// an error the sender counts or sheds on), Send to wait a bounded time for
// room, and Ask for a request with a reply, answered once through a
// buffered-1 channel and abandoned when the caller's context ends.
package actor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Sentinel errors callers branch on.
var (
	// ErrMailboxFull is returned by Tell when the mailbox has no room.
	ErrMailboxFull = errors.New("actor: mailbox full")
	// ErrStopped is returned when the actor has stopped.
	ErrStopped = errors.New("actor: stopped")
)

// Behavior is the state an actor owns and the code that changes it.
// Receive runs on the actor's goroutine only.
type Behavior interface {
	Receive(msg any)
}

// Ticker is implemented by behaviors that want Tick called every Interval on
// their own goroutine, between messages.
type Ticker interface {
	Tick(now time.Time)
}

// Restarter is implemented by behaviors that can rebuild consistent state
// after a panic, typically from the last snapshot they published.
type Restarter interface {
	Restart()
}

// Stopper is implemented by behaviors that release resources when the actor
// stops. It runs on the actor's goroutine after the last message.
type Stopper interface {
	Stopped()
}

// Binder is implemented by behaviors that need their own address (to stop
// themselves or publish state). Bind runs before the goroutine starts.
type Binder interface {
	Bind(*Ref)
}

// Options configure Spawn.
type Options struct {
	// Name identifies the actor in /debug/actors and metrics; unique per registry.
	Name string
	// Kind groups actors ("backend", "scheduler", "aimd", ...).
	Kind string
	// Mailbox is the mailbox capacity (default 64).
	Mailbox int
	// TickEvery, when positive and the behavior is a Ticker, drives Tick.
	// The behavior may change it later with Ref.SetTickEvery.
	TickEvery time.Duration
	// Logger receives panic reports (default slog.Default()).
	Logger *slog.Logger
}

// Ref is the address of a running actor. It is safe for concurrent use.
type Ref struct {
	name, kind string
	mailbox    chan any
	done       chan struct{} // closed when the goroutine has exited
	quit       chan struct{} // closed by Stop
	stopOnce   sync.Once
	reg        *Registry

	processed atomic.Uint64
	dropped   atomic.Uint64
	restarts  atomic.Uint64
	lastMsg   atomic.Int64 // unix nanoseconds
	state     atomic.Pointer[string]
	// tickReq is a tick period the behavior asked for and the loop has not
	// applied yet (0: none; negative: stop ticking). See SetTickEvery.
	tickReq atomic.Int64
}

// Spawn starts b on a new goroutine and registers it in reg (which may be nil).
func Spawn(reg *Registry, b Behavior, o Options) *Ref {
	if o.Mailbox <= 0 {
		o.Mailbox = 64
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	r := &Ref{
		name: o.Name, kind: o.Kind,
		mailbox: make(chan any, o.Mailbox),
		done:    make(chan struct{}),
		quit:    make(chan struct{}),
		reg:     reg,
	}
	if bb, ok := b.(Binder); ok {
		bb.Bind(r)
	}
	if reg != nil {
		reg.add(r)
	}
	go r.run(b, o)
	return r
}

// Name returns the actor's name.
func (r *Ref) Name() string { return r.name }

// Kind returns the actor's kind.
func (r *Ref) Kind() string { return r.kind }

// Tell delivers msg without waiting. It returns ErrMailboxFull when the
// mailbox has no room and ErrStopped after Stop.
func (r *Ref) Tell(msg any) error {
	select {
	case <-r.quit:
		return ErrStopped
	default:
	}
	select {
	case r.mailbox <- msg:
		return nil
	default:
		r.dropped.Add(1)
		return ErrMailboxFull
	}
}

// Send delivers msg, waiting for room until ctx ends. Control-plane callers
// use it so a briefly busy actor does not turn into a lost command.
func (r *Ref) Send(ctx context.Context, msg any) error {
	select {
	case r.mailbox <- msg:
		return nil
	case <-r.quit:
		return ErrStopped
	case <-ctx.Done():
		r.dropped.Add(1)
		return fmt.Errorf("actor %s: enqueue: %w", r.name, ctx.Err())
	}
}

// Ask sends the message made by mk (which embeds the reply channel) and waits
// for exactly one reply or for ctx to end. The reply channel has room for one
// value, so an actor answering a caller that gave up never blocks.
func Ask[T any](ctx context.Context, r *Ref, mk func(reply chan<- T) any) (T, error) {
	reply := make(chan T, 1)
	var zero T
	if err := r.Send(ctx, mk(reply)); err != nil {
		return zero, err
	}
	select {
	case v := <-reply:
		return v, nil
	case <-r.done:
		// The actor may have answered just before exiting.
		select {
		case v := <-reply:
			return v, nil
		default:
			return zero, fmt.Errorf("actor %s: %w", r.name, ErrStopped)
		}
	case <-ctx.Done():
		return zero, fmt.Errorf("actor %s: ask: %w", r.name, ctx.Err())
	}
}

// ping is answered by the actor's loop itself, so a ping proves the
// goroutine takes messages without the behavior knowing about pings.
type ping struct{ pong chan struct{} }

// Ping waits until the actor has taken a message from its mailbox, proving
// its loop is alive and not stuck, or until ctx ends. /admin/selftest uses it.
func (r *Ref) Ping(ctx context.Context) error {
	p := ping{pong: make(chan struct{})}
	if err := r.Send(ctx, p); err != nil {
		return err
	}
	select {
	case <-p.pong:
		return nil
	case <-r.done:
		return fmt.Errorf("actor %s: %w", r.name, ErrStopped)
	case <-ctx.Done():
		return fmt.Errorf("actor %s: ping: %w", r.name, ctx.Err())
	}
}

// Stop asks the actor to finish the message in hand and exit; messages still
// in the mailbox are dropped. Stop does not wait: use Done or StopWait.
func (r *Ref) Stop() {
	r.stopOnce.Do(func() { close(r.quit) })
}

// StopWait stops the actor and waits for its goroutine to exit or ctx to end.
func (r *Ref) StopWait(ctx context.Context) error {
	r.Stop()
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("actor %s: stop: %w", r.name, ctx.Err())
	}
}

// SetTickEvery changes the period of the behavior's Tick to d from now on
// (the next tick comes d after the call's message or tick ends); d <= 0
// stops the ticks until a later call restarts them. The current period
// changes nothing: the ticks keep their phase. A behavior calls it from
// its own goroutine, in Receive or Tick, when a setting it was reconfigured
// with sets its pace (a health checker whose interval changed): the loop
// applies it as soon as the current message or tick is done. It has no
// effect on a behavior that is not a Ticker.
func (r *Ref) SetTickEvery(d time.Duration) {
	if d <= 0 {
		d = -1
	}
	r.tickReq.Store(int64(d))
}

// Done is closed when the actor's goroutine has exited.
func (r *Ref) Done() <-chan struct{} { return r.done }

// SetState publishes a one-line summary of the actor's state for
// /debug/actors. Call it from the actor's own goroutine.
func (r *Ref) SetState(s string) { r.state.Store(&s) }

func (r *Ref) run(b Behavior, o Options) {
	defer func() {
		if s, ok := b.(Stopper); ok {
			r.guard(b, o.Logger, "stopped", s.Stopped)
		}
		if r.reg != nil {
			r.reg.remove(r)
		}
		close(r.done)
	}()
	ticker, isTicker := b.(Ticker)
	var t tickTimer
	defer t.stop()
	if isTicker {
		d := o.TickEvery
		if req := r.tickReq.Swap(0); req != 0 { // asked for in Bind
			d = time.Duration(req)
		}
		t.set(d)
	}
	for {
		select {
		case <-r.quit:
			return
		case msg := <-r.mailbox:
			if p, ok := msg.(ping); ok {
				close(p.pong) // the runtime answers; the behavior never sees it
				continue
			}
			r.deliver(b, o.Logger, msg)
		case now := <-t.c:
			r.guard(b, o.Logger, "tick", func() { ticker.Tick(now) })
		}
		if d := r.tickReq.Swap(0); d != 0 && isTicker {
			t.set(time.Duration(d))
		}
	}
}

// tickTimer is the loop's ticker; its period can change (SetTickEvery).
// A nil channel never fires, so without a period the loop only takes messages.
type tickTimer struct {
	t *time.Ticker
	c <-chan time.Time
	d time.Duration
}

func (t *tickTimer) set(d time.Duration) {
	switch {
	case d <= 0:
		t.stop()
	case t.t == nil:
		t.t = time.NewTicker(d)
		t.c = t.t.C
	case d != t.d:
		t.t.Reset(d)
	}
	t.d = max(d, 0)
}

func (t *tickTimer) stop() {
	if t.t != nil {
		t.t.Stop()
		t.t, t.c = nil, nil
	}
}

func (r *Ref) deliver(b Behavior, log *slog.Logger, msg any) {
	r.processed.Add(1)
	r.lastMsg.Store(time.Now().UnixNano())
	r.guard(b, log, msg, func() { b.Receive(msg) })
}

// guard is the supervisor: it runs fn, and if fn panics it logs the panic,
// counts a restart and lets the behavior rebuild consistent state before the
// loop takes the next message. The goroutine itself never dies of a panic.
func (r *Ref) guard(b Behavior, log *slog.Logger, what any, fn func()) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		r.restarts.Add(1)
		log.Error("actor panicked; restarting",
			"actor", r.name, "kind", r.kind, "message", fmt.Sprintf("%T", what),
			"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		if rs, ok := b.(Restarter); ok {
			defer func() {
				if p := recover(); p != nil {
					log.Error("actor restart panicked", "actor", r.name, "panic", fmt.Sprint(p))
				}
			}()
			rs.Restart()
		}
	}()
	fn()
}
