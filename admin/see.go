package admin

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/events"
	"github.com/lbd/lbd/proxy"
)

// The "see why" endpoints: GET /admin/tap streams routing decisions,
// GET /admin/events the backends' transitions with their causes.
func (s *Server) seeRoutes() {
	s.mux.HandleFunc("GET /admin/tap", takes(s.tap, "pool", "backend", "status", "limit"))
	s.mux.HandleFunc("GET /admin/events", takes(s.events, "pool", "backend", "limit", "follow"))
}

// backendFilter reads the backend parameter: a URL (normalised) or a
// backend's name.
func backendFilter(r *http.Request) string {
	b := r.URL.Query().Get("backend")
	if strings.Contains(b, "://") {
		if u, err := config.NormalizeURL(b); err == nil {
			return u
		}
	}
	return b
}

// knownPool checks the pool parameter, when given, names a pool.
func (s *Server) knownPool(r *http.Request) error {
	if p := r.URL.Query().Get("pool"); p != "" {
		_, err := s.o.Control.Table().Lookup(p)
		return err
	}
	return nil
}

// tap is GET /admin/tap: one server-sent event per proxied request that
// passes the filters, until the client leaves or limit events were sent.
func (s *Server) tap(w http.ResponseWriter, r *http.Request) {
	if s.o.Tap == nil {
		writeError(w, http.StatusNotFound, "no tap in this lbd")
		return
	}
	limit, aerr := limitOf(r, 0)
	if aerr != nil {
		s.fail(w, aerr)
		return
	}
	if err := s.knownPool(r); err != nil {
		s.fail(w, err)
		return
	}
	q := r.URL.Query()
	sub, err := s.o.Tap.Subscribe(proxy.TapFilter{Pool: q.Get("pool"), Backend: backendFilter(r), Status: q.Get("status")})
	switch {
	case errors.Is(err, proxy.ErrBadFilter):
		writeError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), proxy.ErrBadFilter.Error()+": "))
		return
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "tap: "+err.Error())
		return
	}
	defer sub.Close()
	s.relay(r.Context(), startSSE(w), sub, limit, nil)
}

// defaultBacklog is how many past events a follow starts with.
const defaultBacklog = 100

// events is GET /admin/events: the history of transitions that pass the
// filters, oldest first; with follow=1 an SSE stream of the last limit
// (default 100) and then each new one.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	if s.o.Events == nil {
		writeError(w, http.StatusNotFound, "no event history in this lbd")
		return
	}
	q := r.URL.Query()
	follow := false
	if q.Has("follow") {
		on, aerr := onOff("follow", q.Get("follow"))
		if aerr != nil {
			s.fail(w, aerr)
			return
		}
		follow = on
	}
	def := 0
	if follow {
		def = defaultBacklog
	}
	limit, aerr := limitOf(r, def)
	if aerr != nil {
		s.fail(w, aerr)
		return
	}
	if err := s.knownPool(r); err != nil {
		s.fail(w, err)
		return
	}
	f := events.Filter{Pool: q.Get("pool"), Backend: backendFilter(r)}
	if !follow {
		ctx, cancel := s.ctx(r)
		defer cancel()
		evs, err := s.o.Events.Recent(ctx, f, limit)
		if err != nil {
			s.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"events": evs})
		return
	}
	ctx, cancel := s.ctx(r)
	hist, sub, err := s.o.Events.Follow(ctx, f, limit)
	cancel()
	if err != nil {
		s.fail(w, err)
		return
	}
	defer sub.Close()
	// A reconnecting EventSource says what it saw last: resume after it.
	after, _ := strconv.ParseUint(r.Header.Get("Last-Event-ID"), 10, 64)
	out := startSSE(w)
	for _, e := range hist {
		if e.Seq > after && out.event(e.Seq, events.Encode(e)) != nil {
			return
		}
	}
	if out.flush() != nil {
		return
	}
	s.relay(r.Context(), out, sub, 0, events.SeqOf)
}
