package admin

import (
	"net/http"
	"time"
)

// metricsDoc is GET /admin/metrics/json: the figures an operator or a
// script wants without a Prometheus server, in one document.
type metricsDoc struct {
	Time time.Time `json:"time"`
	// Totals since start are read from the registry /metrics serves at the
	// time of the request; Rates are over the metrics dumper's recent window.
	Totals any `json:"totals,omitempty"`
	Rates  any `json:"rates,omitempty"`
	// Backends are each backend actor's own figures (a Stats ask, as in
	// GET /admin/backends), for every pool.
	Backends []backendView `json:"backends"`
	// Admission is the admission control and AIMD state.
	Admission any `json:"admission,omitempty"`
	// Advisory is the scaling advisory's verdict (GET /admin/advisory).
	Advisory any `json:"advisory,omitempty"`
}

func (s *Server) metricsJSON(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	doc := metricsDoc{Time: time.Now().UTC(), Backends: []backendView{}}
	for _, p := range s.o.Control.Table().Pools {
		stats, err := s.Stats(ctx, p.Name)
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "backend actor did not answer: "+err.Error())
			return
		}
		doc.Backends = append(doc.Backends, stats...)
	}
	if s.o.Traffic != nil {
		doc.Totals, doc.Rates = s.o.Traffic()
	}
	if s.o.Admission != nil {
		doc.Admission = s.o.Admission()
	}
	if s.o.Advisory != nil {
		doc.Advisory = s.o.Advisory()
	}
	writeJSON(w, http.StatusOK, doc)
}
