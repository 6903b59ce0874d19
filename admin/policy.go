package admin

import (
	"net/http"

	"github.com/lbd/lbd/scheduler"
)

// Policy and sticky sessions belong to the scheduler actor: reads ask it for
// its Status, changes send SetPolicy, which validates and answers.
func (s *Server) policyRoutes() {
	s.mux.HandleFunc("GET /admin/policy", s.schedulerView(func(st scheduler.Status) any { return viewOf(st) }))
	s.mux.HandleFunc("PUT /admin/policy", takes(s.putPolicy))
	s.mux.HandleFunc("POST /admin/policy", takes(s.postPolicy, "name", "sticky", "sticky_key"))
}

// stickyView is the sticky part of API.md's policy body.
type stickyView struct {
	Enabled *bool  `json:"enabled"`
	Key     string `json:"key"`
}

// policyView is GET /admin/policy's answer and PUT's body; in a PUT an
// absent field keeps its current value.
type policyView struct {
	Policy string      `json:"policy"`
	Sticky *stickyView `json:"sticky"`
}

func viewOf(st scheduler.Status) policyView {
	return policyView{Policy: st.Policy, Sticky: &stickyView{Enabled: &st.StickyEnabled, Key: st.StickyKey}}
}

// schedulerView answers a GET with a view of the scheduler's settings,
// asked of the scheduler actor.
func (s *Server) schedulerView(view func(scheduler.Status) any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := s.ctx(r)
		defer cancel()
		st, err := s.o.Scheduler.Status(ctx)
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
	if !q.Has("name") && !q.Has("sticky") {
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

// setPolicy fills what req leaves out from the current settings and asks
// the scheduler to switch.
func (s *Server) setPolicy(w http.ResponseWriter, r *http.Request, req policyView) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	s.policyMu.Lock()
	defer s.policyMu.Unlock()
	cur, err := s.o.Scheduler.Status(ctx)
	if err != nil {
		s.fail(w, err)
		return
	}
	policy, enabled, key := cur.Policy, cur.StickyEnabled, cur.StickyKey
	if req.Policy != "" {
		policy = req.Policy
	}
	if req.Sticky != nil {
		if req.Sticky.Enabled != nil {
			enabled = *req.Sticky.Enabled
		}
		if req.Sticky.Key != "" {
			key = req.Sticky.Key
		}
	}
	if err := s.o.Scheduler.SetPolicy(ctx, policy, enabled, key); err != nil {
		s.fail(w, err)
		return
	}
	s.changed(ctx, "policy", "")
	if st, err := s.o.Scheduler.Status(ctx); err == nil {
		cur = st
	}
	writeJSON(w, http.StatusOK, viewOf(cur))
}
