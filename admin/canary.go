package admin

import (
	"net/http"

	"github.com/lbd/lbd/scheduler"
)

// Canary routing is the scheduler actor's: it checks that the backend is in
// the set and publishes a picker that sends it its share.
func (s *Server) canaryRoutes() {
	s.mux.HandleFunc("GET /admin/canary", s.schedulerView(func(st scheduler.Status) any { return canaryOf(st) }))
	s.mux.HandleFunc("POST /admin/canary/set", takes(s.setCanary, "url", "percent"))
	s.mux.HandleFunc("POST /admin/canary/clear", takes(s.clearCanary))
}

type canaryView struct {
	Backend string  `json:"backend"`
	Percent float64 `json:"percent"`
}

func canaryOf(st scheduler.Status) canaryView {
	return canaryView{Backend: st.CanaryURL, Percent: st.CanaryPercent}
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
	s.applyCanary(w, r, u, p)
}

func (s *Server) clearCanary(w http.ResponseWriter, r *http.Request) { s.applyCanary(w, r, "", 0) }

func (s *Server) applyCanary(w http.ResponseWriter, r *http.Request, url string, pct float64) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	if err := s.o.Scheduler.SetCanary(ctx, url, pct); err != nil {
		s.fail(w, err)
		return
	}
	s.changed(ctx, "canary", url)
	writeJSON(w, http.StatusOK, canaryView{Backend: url, Percent: pct})
}
