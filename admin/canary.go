package admin

import (
	"net/http"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/routing"
	"github.com/lbd/lbd/scheduler"
)

// A pool's canary is read from its scheduler actor and changed through the
// routing-config owner, which checks that the backend is in the pool.
func (s *Server) canaryRoutes() {
	s.mux.HandleFunc("GET /admin/canary", takes(s.schedulerView(func(st scheduler.Status) any { return canaryOf(st) }), "pool"))
	s.mux.HandleFunc("POST /admin/canary/set", takes(s.setCanary, "url", "percent", "pool"))
	s.mux.HandleFunc("POST /admin/canary/clear", takes(s.clearCanary, "pool"))
}

type canaryView struct {
	Pool    string  `json:"pool,omitempty"`
	Backend string  `json:"backend"`
	Percent float64 `json:"percent"`
}

func canaryOf(st scheduler.Status) canaryView {
	return canaryView{Pool: st.Pool, Backend: st.CanaryURL, Percent: st.CanaryPercent}
}

func (s *Server) setCanary(w http.ResponseWriter, r *http.Request) {
	u, aerr := queryURL(r)
	if aerr != nil {
		s.fail(w, aerr)
		return
	}
	p, aerr := percent("percent", r.URL.Query().Get("percent"))
	if aerr != nil {
		s.fail(w, aerr)
		return
	}
	s.applyCanary(w, r, config.Canary{Backend: u, Percent: p})
}

func (s *Server) clearCanary(w http.ResponseWriter, r *http.Request) {
	s.applyCanary(w, r, config.Canary{})
}

func (s *Server) applyCanary(w http.ResponseWriter, r *http.Request, c config.Canary) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	ch := routing.Change{Op: routing.OpCanary, Pool: poolOf(r), Canary: c, By: r.RemoteAddr}
	if err := s.o.Control.Apply(ctx, ch); err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, canaryView{Pool: ch.PoolName(), Backend: c.Backend, Percent: c.Percent})
}
