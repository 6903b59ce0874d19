package admin

import "net/http"

// advisory serves GET /admin/advisory: the scaling advisory's current versus
// baseline latency per backend and overall, and whether it warns.
func (s *Server) advisory(w http.ResponseWriter, _ *http.Request) {
	if s.o.Advisory == nil {
		writeError(w, http.StatusNotFound, "the scaling advisory is not running")
		return
	}
	writeJSON(w, http.StatusOK, s.o.Advisory())
}
