package proxy

// Stalled clients (timeouts.client_stall). A client that stops sending its
// request body, or stops taking its response, would hold lbd's places (an
// admission place, a backend slot, a backend connection) for as long as it
// likes. lbd cuts it once one read of its body, or one write to it, has
// been waiting for client_stall: nginx's client_body_timeout and
// send_timeout, measured the same way (between two successive operations,
// not over the whole transfer).
//
// The time runs only while an operation is pending, so a backend that
// takes minutes to read the body or to produce the next SSE event never
// makes a healthy client look stalled. Two mechanisms cover it:
//
//   - writes on a client connection (HTTP/1, the HTTP/2 connection as a
//     whole, TLS, upgraded connections) extend the connection's write
//     deadline before each write (conns.go): a write blocked that long
//     fails, whoever makes it;
//   - a read of an HTTP/1 request body moves the connection's read
//     deadline likewise (connDeadline), and clears it at the end of the
//     body, where net/http starts its own read of the connection;
//   - a read of an HTTP/2 request body and a write to one HTTP/2 stream
//     (which flow control can block while the connection is fine) are
//     watched by a stallWatch, since a stream's deadline in net/http is
//     one for the whole stream and costs a message to the connection's
//     loop: the operation marks itself pending with two atomic stores,
//     and one timer per request, armed on the first operation, checks at
//     most every client_stall and cuts only an operation still pending
//     since then.

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// stallWatch watches one direction of one request. begin and end bracket
// each operation; they are called by one goroutine at a time. The zero
// value with limit 0 watches nothing.
type stallWatch struct {
	limit time.Duration
	base  time.Time           // offsets are monotonic durations since base
	rw    http.ResponseWriter // the server's writer, whose deadline a cut sets
	write bool                // watches writes (else reads)

	pending atomic.Int64 // 1 + offset at which the pending operation began; 0: none
	stalled atomic.Bool  // cut was called

	mu      sync.Mutex
	timer   *time.Timer
	stopped bool // the request is over: cut must not run (the ResponseController is dead)
}

func (w *stallWatch) begin() {
	if w.limit <= 0 {
		return
	}
	w.pending.Store(int64(time.Since(w.base)) + 1)
	if w.timer == nil {
		w.arm()
	}
}

func (w *stallWatch) end() {
	if w.limit > 0 {
		w.pending.Store(0)
	}
}

func (w *stallWatch) arm() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer == nil && !w.stopped {
		w.timer = time.AfterFunc(w.limit, w.check)
	}
}

// check runs on the timer: it cuts an operation pending for the limit and
// otherwise looks again when the pending one (or the next) could reach it.
func (w *stallWatch) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	next := w.limit
	if p := w.pending.Load(); p != 0 {
		waited := time.Since(w.base) - time.Duration(p-1)
		if waited >= w.limit {
			w.stalled.Store(true)
			w.cut()
			return
		}
		next = w.limit - waited
	}
	w.timer.Reset(next)
}

// cut makes the pending operation fail at once.
func (w *stallWatch) cut() {
	rc := http.NewResponseController(w.rw)
	if w.write {
		_ = rc.SetWriteDeadline(pastDeadline)
	} else {
		_ = rc.SetReadDeadline(pastDeadline)
	}
}

// stop ends the watch; after it returns, cut is never called.
func (w *stallWatch) stop() {
	if w.limit <= 0 {
		return
	}
	w.mu.Lock()
	w.stopped = true
	if w.timer != nil {
		w.timer.Stop()
	}
	w.mu.Unlock()
}

// pastDeadline is a deadline already over: setting it fails a pending
// read or write at once (HTTP/1: the connection's; HTTP/2: the stream's).
var pastDeadline = time.Unix(1, 0)

// watchWrites starts watching the request's writes to an HTTP/2 stream;
// HTTP/1 writes are bounded by their connection's deadline (conns.go).
func (s *reqState) watchWrites(r *http.Request, limit time.Duration) {
	if r.ProtoMajor != 2 || limit <= 0 {
		return
	}
	s.writes.limit, s.writes.base, s.writes.rw, s.writes.write = limit, s.start, s.ResponseWriter, true
}

// stopWatches ends the watches before the handler returns.
func (s *reqState) stopWatches() {
	s.body.watch.stop()
	s.body.deadline.stop()
	s.writes.stop()
}

// readDeadliner is what an HTTP/1 ResponseWriter offers to move its
// connection's read deadline (net/http's *response does).
type readDeadliner interface{ SetReadDeadline(time.Time) error }

// connDeadline bounds the reads of an HTTP/1 request body with the
// connection's read deadline: before each read it moves to now +
// client_stall, at most once per client_stall/16 (a clock read per read,
// no timer). A connection deadline fails only a read that waits, so a
// backend slow to ask for more never trips it.
type connDeadline struct {
	d     readDeadliner
	limit time.Duration
	set   atomic.Int64 // UnixNano of the last move; 0: none set

	mu   sync.Mutex // taken only to move or clear the deadline
	done bool       // the handler returned: the connection may serve another request
}

func (c *connDeadline) before() {
	now := time.Now().UnixNano()
	if last := c.set.Load(); last != 0 && now-last <= int64(c.limit/16) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.done {
		c.set.Store(now)
		_ = c.d.SetReadDeadline(time.Unix(0, now).Add(c.limit))
	}
}

// expired reports whether the read deadline set last has passed: the
// connection's reads fail from then on.
func (c *connDeadline) expired(now time.Time) bool {
	set := c.set.Load()
	return set != 0 && now.UnixNano()-set >= int64(c.limit)
}

// clear drops the deadline at the end of the body: net/http then reads
// the connection itself (to notice a client that leaves) and must not
// time out for our sake.
func (c *connDeadline) clear() {
	if c.set.Load() == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.done && c.set.Swap(0) != 0 {
		_ = c.d.SetReadDeadline(time.Time{})
	}
}

// stop is the handler's end: the deadline is not touched again (the next
// request on the connection sets its own).
func (c *connDeadline) stop() {
	if c.d == nil {
		return
	}
	c.mu.Lock()
	c.done = true
	c.mu.Unlock()
}
