package admin

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Stream is one live subscription an SSE endpoint relays: encoded JSON
// events, and how many the subscriber missed by falling behind
// (*feed.Sub is one).
type Stream interface {
	C() <-chan []byte
	Done() <-chan struct{}
	Dropped() uint64
	Close()
}

// sseHeartbeat keeps idle streams open through proxies and lets a stream
// notice a client that left.
const sseHeartbeat = 15 * time.Second

// sseBatch is how often a stream sends what it has. A stream woken for
// every event would cost a wake-up, a write and a flush per event and per
// listener; the data plane shares the machine with it. A tenth of a second
// is quicker than anyone reads, and under load one write carries many events.
const sseBatch = 100 * time.Millisecond

// sse writes server-sent events: one "data: {json}" event per message,
// with an id when the message has one, into a buffer flushed once per batch.
type sse struct {
	w       *bufio.Writer
	rc      *http.ResponseController
	dropped uint64
	pending bool // written since the last flush
}

func startSSE(w http.ResponseWriter) *sse {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx in front must not buffer the stream
	w.WriteHeader(http.StatusOK)
	s := &sse{w: bufio.NewWriterSize(w, 64<<10), rc: http.NewResponseController(w)}
	_ = s.rc.Flush()
	return s
}

// event writes one event; id 0 sends none.
func (s *sse) event(id uint64, data []byte) error {
	s.pending = true
	if id > 0 {
		s.w.WriteString("id: ")
		s.w.WriteString(strconv.FormatUint(id, 10))
		s.w.WriteByte('\n')
	}
	s.w.WriteString("data: ")
	s.w.Write(data)
	_, err := s.w.WriteString("\n\n")
	return err
}

// note tells the client how many events it missed so far, as an event of
// its own type ("dropped"), which an EventSource's onmessage ignores.
func (s *sse) note(st Stream) {
	if d := st.Dropped(); d != s.dropped {
		s.dropped = d
		s.pending = true
		fmt.Fprintf(s.w, "event: dropped\ndata: {\"dropped\":%d}\n\n", d)
	}
}

// flush sends what was written.
func (s *sse) flush() error {
	s.pending = false
	if err := s.w.Flush(); err != nil {
		return err
	}
	return s.rc.Flush()
}

// relay copies st's events to the client until it leaves, limit events
// (0: no limit) were sent, the stream ends, or lbd shuts down: every
// sseBatch, whatever arrived since. idOf gives an event's id (nil: none).
func (s *Server) relay(ctx context.Context, out *sse, st Stream, limit int, idOf func([]byte) uint64) {
	tick := time.NewTicker(sseBatch)
	defer tick.Stop()
	sent, idle := 0, 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.streams.Done():
			return
		case <-st.Done():
			return
		case <-tick.C:
		}
		for more := true; more; {
			select {
			case b := <-st.C():
				var id uint64
				if idOf != nil {
					id = idOf(b)
				}
				if out.event(id, b) != nil {
					return
				}
				sent++
				more = limit == 0 || sent < limit
			default:
				more = false
			}
		}
		out.note(st)
		if idle++; out.pending {
			idle = 0
		} else if time.Duration(idle)*sseBatch >= sseHeartbeat {
			idle = 0
			out.w.WriteString(": keep-alive\n\n")
			out.pending = true
		}
		if out.pending && out.flush() != nil {
			return
		}
		if limit > 0 && sent >= limit {
			return
		}
	}
}

// EndStreams ends every SSE stream being served (tap, events follow), for
// a shutdown: http.Server.Shutdown waits for handlers, and a stream's
// handler would otherwise run until its client left.
func (s *Server) EndStreams() { s.endStreams() }

// limitOf reads the limit parameter: a count of at least 1, or def.
func limitOf(r *http.Request, def int) (int, *apiError) {
	raw := r.URL.Query().Get("limit")
	if raw == "" {
		return def, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 {
		return 0, badRequest("limit: want a whole number of at least 1, got %q", raw)
	}
	return n, nil
}
