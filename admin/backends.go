package admin

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strings"

	"github.com/lbd/lbd/backendactor"
	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/scheduler"
)

// Backend changes: add and remove go to the scheduler actor, which owns the
// set; drain, cap, weight and warm-up go to the backend's own actor through
// its handle. Both the REST forms and the original README's query forms
// end in the same functions.
func (s *Server) backendRoutes() {
	s.mux.HandleFunc("POST /admin/backends", takes(s.addJSON))
	s.mux.HandleFunc("DELETE /admin/backends", takes(s.remove, "url"))
	s.mux.HandleFunc("POST /admin/backend/add", takes(s.addQuery, "url", "weight", "max_inflight", "protocol"))
	s.mux.HandleFunc("POST /admin/backend/remove", takes(s.remove, "url"))
	s.mux.HandleFunc("POST /admin/drain", takes(s.command(func(ctx context.Context, h *backendactor.Handle, _ *http.Request) error {
		return h.Drain(ctx)
	}), "url"))
	s.mux.HandleFunc("POST /admin/undrain", takes(s.command(func(ctx context.Context, h *backendactor.Handle, _ *http.Request) error {
		return h.Undrain(ctx)
	}), "url"))
	s.mux.HandleFunc("POST /admin/backend/warm-reset", takes(s.command(func(ctx context.Context, h *backendactor.Handle, _ *http.Request) error {
		return h.WarmReset(ctx)
	}), "url"))
	s.mux.HandleFunc("POST /admin/backend/cap", takes(s.command(func(ctx context.Context, h *backendactor.Handle, r *http.Request) error {
		n, err := requireInt(r, "max_inflight", 0, math.MaxInt32)
		if err != nil {
			return err
		}
		return h.SetCap(ctx, n)
	}), "url", "max_inflight"))
	s.mux.HandleFunc("POST /admin/backend/weight", takes(s.command(func(ctx context.Context, h *backendactor.Handle, r *http.Request) error {
		n, err := requireInt(r, "weight", 1, config.MaxWeight)
		if err != nil {
			return err
		}
		return h.SetWeight(ctx, n)
	}), "url", "weight"))
}

// addRequest is POST /admin/backends' body. Weight defaults to 1.
type addRequest struct {
	URL         string `json:"url"`
	Weight      *int   `json:"weight"`
	MaxInflight int    `json:"max_inflight"`
	Protocol    string `json:"protocol"`
}

func (s *Server) addJSON(w http.ResponseWriter, r *http.Request) {
	var req addRequest
	if err := decodeBody(r, &req); err != nil {
		s.fail(w, err)
		return
	}
	b := config.Backend{URL: req.URL, Weight: 1, MaxInflight: req.MaxInflight, Protocol: req.Protocol}
	if req.Weight != nil {
		b.Weight = *req.Weight
	}
	s.add(w, r, b)
}

func (s *Server) addQuery(w http.ResponseWriter, r *http.Request) {
	wt, err := queryInt(r, "weight", 1, math.MinInt32, math.MaxInt32) // range checked by Backend.Validate
	if err != nil {
		s.fail(w, err)
		return
	}
	capN, err := queryInt(r, "max_inflight", 0, math.MinInt32, math.MaxInt32)
	if err != nil {
		s.fail(w, err)
		return
	}
	q := r.URL.Query()
	if !q.Has("url") {
		s.fail(w, badRequest("url: missing; give the backend's URL, e.g. url=http://127.0.0.1:8081"))
		return
	}
	s.add(w, r, config.Backend{URL: q.Get("url"), Weight: wt, MaxInflight: capN, Protocol: q.Get("protocol")})
}

// add validates b as a config entry would be and asks the scheduler to start it.
func (s *Server) add(w http.ResponseWriter, r *http.Request, b config.Backend) {
	if b.Protocol == "" {
		b.Protocol = "http1"
	}
	if err := b.Validate(); err != nil {
		s.fail(w, badRequest("%s", strings.ReplaceAll(err.Error(), "\n", "; ")))
		return
	}
	u, _ := config.NormalizeURL(b.URL) // valid: Validate checked it
	ctx, cancel := s.ctx(r)
	defer cancel()
	h, err := s.o.Scheduler.Add(ctx, scheduler.Spec{URL: u, Weight: b.Weight, MaxInflight: b.MaxInflight, Protocol: b.Protocol})
	if err != nil {
		s.fail(w, err)
		return
	}
	s.changed(ctx, "add", u)
	s.writeStats(ctx, w, http.StatusCreated, h)
}

func (s *Server) remove(w http.ResponseWriter, r *http.Request) {
	u, aerr := queryURL(r)
	if aerr != nil {
		s.fail(w, aerr)
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	if err := s.o.Scheduler.Remove(ctx, u, s.o.RemoveGrace); err != nil {
		s.fail(w, err)
		return
	}
	s.changed(ctx, "remove", u)
	writeJSON(w, http.StatusOK, map[string]any{"removed": u, "drain_grace": s.o.RemoveGrace.String()})
}

// command wraps a change to one backend's actor named by ?url=.
func (s *Server) command(do func(context.Context, *backendactor.Handle, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, aerr := queryURL(r)
		if aerr != nil {
			s.fail(w, aerr)
			return
		}
		h := s.o.Scheduler.Lookup(u)
		if h == nil {
			s.fail(w, &apiError{http.StatusNotFound, "url: no backend " + u})
			return
		}
		ctx, cancel := s.ctx(r)
		defer cancel()
		if err := do(ctx, h, r); err != nil {
			s.fail(w, err)
			return
		}
		s.changed(ctx, strings.TrimPrefix(r.URL.Path, "/admin/"), u)
		s.writeStats(ctx, w, http.StatusOK, h)
	}
}

func (s *Server) writeStats(ctx context.Context, w http.ResponseWriter, status int, h *backendactor.Handle) {
	st, err := h.Stats(ctx)
	if err != nil { // the change is done; report it without the figures
		writeJSON(w, status, map[string]string{"url": h.URL()})
		return
	}
	writeJSON(w, status, st)
}

// fail maps an error to API.md's statuses.
func (s *Server) fail(w http.ResponseWriter, err error) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		writeError(w, ae.status, ae.msg)
	case errors.Is(err, scheduler.ErrExists):
		writeError(w, http.StatusConflict, "url: "+err.Error())
	case errors.Is(err, scheduler.ErrNotFound):
		writeError(w, http.StatusNotFound, "url: "+err.Error())
	case errors.Is(err, scheduler.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		writeError(w, http.StatusServiceUnavailable, "the owning actor did not answer in time: "+err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

// changed tells the persistence hook that a change succeeded. The change is
// applied either way; a failed write is logged, not turned into a failed call.
func (s *Server) changed(ctx context.Context, what, url string) {
	s.o.Logger.Info("admin change", "change", what, "url", url)
	if s.o.Changed == nil {
		return
	}
	if err := s.o.Changed(ctx); err != nil {
		s.o.Logger.Error("admin change applied but not persisted", "change", what, "err", err)
	}
}
