package admin

import (
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

// sse writes server-sent events: one "data: {json}" event per message,
// with an id when the message has one, flushed at once.
type sse struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	dropped uint64
}

func startSSE(w http.ResponseWriter) *sse {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx in front must not buffer the stream
	w.WriteHeader(http.StatusOK)
	s := &sse{w: w, rc: http.NewResponseController(w)}
	_ = s.rc.Flush()
	return s
}

// event writes one event; id 0 sends none.
func (s *sse) event(id uint64, data []byte) error {
	var err error
	if id > 0 {
		_, err = fmt.Fprintf(s.w, "id: %d\n", id)
	}
	if err == nil {
		_, err = fmt.Fprintf(s.w, "data: %s\n\n", data)
	}
	return err
}

// note tells the client how many events it missed so far, as an event of
// its own type ("dropped"), which an EventSource's onmessage ignores.
func (s *sse) note(st Stream) error {
	d := st.Dropped()
	if d == s.dropped {
		return nil
	}
	s.dropped = d
	_, err := fmt.Fprintf(s.w, "event: dropped\ndata: {\"dropped\":%d}\n\n", d)
	return err
}

func (s *sse) flush() error { return s.rc.Flush() }

// relay copies st's events to the client until it leaves, limit events
// (0: no limit) were sent, the stream ends, or lbd shuts down. It writes
// whatever is buffered before each flush, so a busy stream costs one
// write per batch, not per event. idOf gives an event's id (nil: none).
func (s *Server) relay(ctx context.Context, out *sse, st Stream, limit int, sent int, idOf func([]byte) uint64) {
	beat := time.NewTicker(sseHeartbeat)
	defer beat.Stop()
	write := func(b []byte) bool {
		var id uint64
		if idOf != nil {
			id = idOf(b)
		}
		if out.event(id, b) != nil {
			return false
		}
		sent++
		return limit == 0 || sent < limit
	}
	if limit > 0 && sent >= limit {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.streams.Done():
			return
		case <-st.Done():
			return
		case <-beat.C:
			if _, err := fmt.Fprint(out.w, ": keep-alive\n\n"); err != nil || out.flush() != nil {
				return
			}
		case b := <-st.C():
			more := write(b)
			for more && len(st.C()) > 0 {
				more = write(<-st.C())
			}
			if out.note(st) != nil || out.flush() != nil || !more {
				return
			}
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
