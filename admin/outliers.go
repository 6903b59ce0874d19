package admin

import "net/http"

// OutliersPath is where OutliersHandler is registered.
const OutliersPath = "/admin/outliers"

// OutliersHandler serves GET /admin/outliers: the backends the outlier
// detector has ejected right now, why (reason and detail), since when,
// until when and how many times each was ejected. report returns the
// detector's published report (controller.OutlierReport, encoded as it is,
// so admin does not import the controller); it is read, never asked, so the
// endpoint answers even while the detector is busy. Register it with
// s.Handle(OutliersPath, OutliersHandler(...)).
func OutliersHandler(report func() any) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, r.Method+" "+OutliersPath+": only GET is allowed")
			return
		}
		writeJSON(w, http.StatusOK, report())
	})
}
