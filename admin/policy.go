package admin

import (
	"net/http"

	"github.com/lbd/lbd/routing"
	"github.com/lbd/lbd/scheduler"
)

// A pool's policy and sticky sessions are read from its scheduler actor's
// Status and changed through the routing-config owner, which fills in what
// a call leaves out from the settings it owns, so two calls can never undo
// each other.
func (s *Server) policyRoutes() {
	s.mux.HandleFunc("GET /admin/policy", takes(s.schedulerView(func(st scheduler.Status) any { return policyViewOf(st) }), "pool"))
	s.mux.HandleFunc("PUT /admin/policy", takes(s.putPolicy, "pool"))
	s.mux.HandleFunc("POST /admin/policy", takes(s.postPolicy, "name", "sticky", "sticky_key", "pool"))
}

// stickyView is the sticky part of API.md's policy body.
type stickyView struct {
	Enabled *bool  `json:"enabled"`
	Key     string `json:"key"`
}

// policyView is GET /admin/policy's answer and PUT's body; in a PUT an
// absent field keeps its current value.
type policyView struct {
	Pool   string      `json:"pool,omitempty"`
	Policy string      `json:"policy"`
	Sticky *stickyView `json:"sticky"`
}

func policyViewOf(st scheduler.Status) policyView {
	return policyView{Pool: st.Pool, Policy: st.Policy, Sticky: &stickyView{Enabled: &st.StickyEnabled, Key: st.StickyKey}}
}

// schedulerView answers a GET with a view of the pool's scheduler
// settings, asked of its actor.
func (s *Server) schedulerView(view func(scheduler.Status) any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sched, err := s.schedulerOf(poolOf(r))
		if err != nil {
			s.fail(w, err)
			return
		}
		ctx, cancel := s.ctx(r)
		defer cancel()
		st, err := sched.Status(ctx)
		if err != nil {
			s.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, view(st))
	}
}

func (s *Server) putPolicy(w http.ResponseWriter, r *http.Request) {
	var req policyView
	if err := decodeBody(r, &req); err != nil {
		s.fail(w, err)
		return
	}
	s.setPolicy(w, r, req)
}

// postPolicy is the original query form: ?name=rr&sticky=on[&sticky_key=header:X-User].
func (s *Server) postPolicy(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := policyView{Policy: q.Get("name")}
	if !q.Has("name") && !q.Has("sticky") && !q.Has("sticky_key") {
		s.fail(w, badRequest("name: missing; give a policy (rr, wrr, lc, p2c-ewma) and/or sticky=on|off"))
		return
	}
	if q.Has("sticky") || q.Has("sticky_key") {
		req.Sticky = &stickyView{Key: q.Get("sticky_key")}
		if q.Has("sticky") {
			on, err := onOff("sticky", q.Get("sticky"))
			if err != nil {
				s.fail(w, err)
				return
			}
			req.Sticky.Enabled = &on
		}
	}
	s.setPolicy(w, r, req)
}

// setPolicy asks the owner to switch; what req leaves out stays.
func (s *Server) setPolicy(w http.ResponseWriter, r *http.Request, req policyView) {
	c := routing.Change{Op: routing.OpPolicy, Pool: poolOf(r), Policy: req.Policy, By: r.RemoteAddr}
	if req.Sticky != nil {
		c.StickyEnabled, c.StickyKey = req.Sticky.Enabled, req.Sticky.Key
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	if err := s.o.Control.Apply(ctx, c); err != nil {
		s.fail(w, err)
		return
	}
	s.schedulerView(func(st scheduler.Status) any { return policyViewOf(st) })(w, r)
}
