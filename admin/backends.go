package admin

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"

	"github.com/lbd/lbd/backendactor"
	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/fleet"
	"github.com/lbd/lbd/routing"
	"github.com/lbd/lbd/scheduler"
)

// Backend changes are routing changes: each call becomes one
// routing.Change for the routing-config owner, which checks it, commands
// the pool's scheduler or the backend's actor and writes the state before
// the call answers. Only warm-reset, which changes no setting, goes to the
// backend's actor directly. Every call takes pool=NAME (default
// "default"); the REST forms and the original README's query forms end in
// the same functions.
func (s *Server) backendRoutes() {
	s.mux.HandleFunc("POST /admin/backends", takes(s.addJSON, "pool"))
	s.mux.HandleFunc("DELETE /admin/backends", takes(s.remove, "url", "pool"))
	s.mux.HandleFunc("POST /admin/backend/add", takes(s.addQuery, "url", "weight", "max_inflight", "protocol", "name", "pool"))
	s.mux.HandleFunc("POST /admin/backend/remove", takes(s.remove, "url", "pool"))
	s.mux.HandleFunc("POST /admin/drain", takes(s.change(routing.OpDrain, ""), "url", "pool"))
	s.mux.HandleFunc("POST /admin/undrain", takes(s.change(routing.OpUndrain, ""), "url", "pool"))
	s.mux.HandleFunc("POST /admin/backend/cap", takes(s.change(routing.OpCap, "max_inflight"), "url", "max_inflight", "pool"))
	s.mux.HandleFunc("POST /admin/backend/weight", takes(s.change(routing.OpWeight, "weight"), "url", "weight", "pool"))
	s.mux.HandleFunc("POST /admin/backend/warm-reset", takes(s.warmReset, "url", "pool"))
}

// backendView is one backend in the admin API: its actor's figures, with
// its pool, its name and where it came from.
type backendView struct {
	Pool   string `json:"pool"`
	Name   string `json:"name,omitempty"`
	Source string `json:"source"`
	backendactor.Stats
}

// poolOf reads the pool parameter: "default" when absent.
func poolOf(r *http.Request) string {
	if p := r.URL.Query().Get("pool"); p != "" {
		return p
	}
	return config.DefaultPool
}

// schedulerOf returns the pool's scheduler, or a 404 naming the pools.
func (s *Server) schedulerOf(pool string) (*scheduler.Scheduler, error) {
	if sched, ok := s.o.Control.Scheduler(pool); ok {
		return sched, nil
	}
	_, err := s.o.Control.Table().Lookup(pool)
	if err == nil { // in the table but not running: a pool that is starting or stopping
		err = fmt.Errorf("%w %q: not running", routing.ErrUnknownPool, pool)
	}
	return nil, err
}

// Stats asks every backend actor of the pool for its figures, in the
// pool's order.
func (s *Server) Stats(ctx context.Context, pool string) ([]backendView, error) {
	sched, err := s.schedulerOf(pool)
	if err != nil {
		return nil, err
	}
	p, _ := s.o.Control.Table().Pool(pool)
	hs := sched.Picker().Backends()
	out := make([]backendView, 0, len(hs))
	for _, h := range hs {
		st, err := h.Stats(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, backendViewOf(pool, p, st))
	}
	return out, nil
}

func backendViewOf(pool string, p *routing.Pool, st backendactor.Stats) backendView {
	v := backendView{Pool: pool, Stats: st}
	if p != nil {
		if b, ok := p.Backend(st.URL); ok {
			v.Name, v.Source = b.Name, b.Source
		}
	}
	return v
}

func (s *Server) listBackends(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	stats, err := s.Stats(ctx, poolOf(r))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"backends": stats})
}

// addRequest is POST /admin/backends' body. Weight defaults to 1.
type addRequest struct {
	URL         string `json:"url"`
	Name        string `json:"name"`
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
	b := config.Backend{URL: req.URL, Name: req.Name, Weight: 1, MaxInflight: req.MaxInflight, Protocol: req.Protocol}
	if req.Weight != nil {
		b.Weight = *req.Weight
	}
	s.add(w, r, b)
}

func (s *Server) addQuery(w http.ResponseWriter, r *http.Request) {
	// Any whole number passes here: the range is the config file's, and the
	// owner judges it by the same rule as a JSON body or the file.
	wt, err := queryInt(r, "weight", 1, math.MinInt, math.MaxInt)
	if err != nil {
		s.fail(w, err)
		return
	}
	capN, err := queryInt(r, "max_inflight", 0, math.MinInt, math.MaxInt)
	if err != nil {
		s.fail(w, err)
		return
	}
	q := r.URL.Query()
	if !q.Has("url") {
		s.fail(w, badRequest("url: missing; give the backend's URL, e.g. url=http://127.0.0.1:8081"))
		return
	}
	s.add(w, r, config.Backend{URL: q.Get("url"), Name: q.Get("name"), Weight: wt, MaxInflight: capN, Protocol: q.Get("protocol")})
}

// add asks the owner to add b; it is judged by the config file's rules.
func (s *Server) add(w http.ResponseWriter, r *http.Request, b config.Backend) {
	c := routing.Change{Op: routing.OpAdd, Pool: poolOf(r), Backend: b, By: r.RemoteAddr}
	ctx, cancel := s.ctx(r)
	defer cancel()
	if err := s.o.Control.Apply(ctx, c); err != nil {
		s.fail(w, err)
		return
	}
	u, _ := config.NormalizeURL(b.URL) // valid: the owner took it
	s.writeBackend(ctx, w, http.StatusCreated, c.PoolName(), u)
}

func (s *Server) remove(w http.ResponseWriter, r *http.Request) {
	u, aerr := queryURL(r)
	if aerr != nil {
		s.fail(w, aerr)
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	c := routing.Change{Op: routing.OpRemove, Pool: poolOf(r), URL: u, By: r.RemoteAddr}
	if err := s.o.Control.Apply(ctx, c); err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"removed": u, "pool": c.PoolName()})
}

// change handles the calls that change one setting of a backend named by
// ?url=; param names the call's number (weight, max_inflight), if any.
func (s *Server) change(op routing.Op, param string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, aerr := queryURL(r)
		if aerr != nil {
			s.fail(w, aerr)
			return
		}
		c := routing.Change{Op: op, Pool: poolOf(r), URL: u, By: r.RemoteAddr}
		if param != "" {
			n, aerr := requireInt(r, param, math.MinInt, math.MaxInt) // the range is the config file's, judged by the owner
			if aerr != nil {
				s.fail(w, aerr)
				return
			}
			c.N = n
		}
		ctx, cancel := s.ctx(r)
		defer cancel()
		if err := s.o.Control.Apply(ctx, c); err != nil {
			s.fail(w, err)
			return
		}
		s.writeBackend(ctx, w, http.StatusOK, c.PoolName(), u)
	}
}

func (s *Server) warmReset(w http.ResponseWriter, r *http.Request) {
	u, aerr := queryURL(r)
	if aerr != nil {
		s.fail(w, aerr)
		return
	}
	sched, err := s.schedulerOf(poolOf(r))
	if err != nil {
		s.fail(w, err)
		return
	}
	h := sched.Lookup(u)
	if h == nil {
		s.fail(w, &apiError{http.StatusNotFound, "url: no backend " + u + " in pool " + poolOf(r)})
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	if err := h.WarmReset(ctx); err != nil {
		s.fail(w, err)
		return
	}
	s.o.Logger.Info("admin change", "op", "warm-reset", "pool", poolOf(r), "url", u, "by", r.RemoteAddr)
	s.writeBackend(ctx, w, http.StatusOK, poolOf(r), u)
}

// writeBackend answers with the backend's figures after a change.
func (s *Server) writeBackend(ctx context.Context, w http.ResponseWriter, status int, pool, url string) {
	sched, ok := s.o.Control.Scheduler(pool)
	var h *backendactor.Handle
	if ok {
		h = sched.Lookup(url)
	}
	if h == nil { // the change is done; report it without the figures
		writeJSON(w, status, map[string]string{"url": url, "pool": pool})
		return
	}
	st, err := h.Stats(ctx)
	if err != nil {
		writeJSON(w, status, map[string]string{"url": url, "pool": pool})
		return
	}
	p, _ := s.o.Control.Table().Pool(pool)
	writeJSON(w, status, backendViewOf(pool, p, st))
}

// fail maps an error to API.md's statuses.
func (s *Server) fail(w http.ResponseWriter, err error) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		writeError(w, ae.status, ae.msg)
	case errors.Is(err, fleet.ErrConflict):
		writeError(w, http.StatusConflict, err.Error()+"; read the state again and retry")
	case errors.Is(err, fleet.ErrUnavailable):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	case errors.Is(err, routing.ErrUnknownPool):
		writeError(w, http.StatusNotFound, "pool: "+err.Error())
	case errors.Is(err, routing.ErrExists), errors.Is(err, routing.ErrOwned), errors.Is(err, scheduler.ErrExists):
		writeError(w, http.StatusConflict, "url: "+err.Error())
	case errors.Is(err, routing.ErrNotFound), errors.Is(err, scheduler.ErrNotFound):
		writeError(w, http.StatusNotFound, "url: "+err.Error())
	case errors.Is(err, routing.ErrInvalid), errors.Is(err, scheduler.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		writeError(w, http.StatusServiceUnavailable, "the owning actor did not answer in time: "+err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}
