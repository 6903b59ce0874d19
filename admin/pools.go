package admin

import (
	"errors"
	"net/http"
	"strings"

	"github.com/lbd/lbd/config"
)

// poolView is one pool in GET /admin/pools.
type poolView struct {
	Name        string        `json:"name"`
	Policy      string        `json:"policy"`
	Sticky      config.Sticky `json:"sticky"`
	Canary      config.Canary `json:"canary"`
	Backends    int           `json:"backends"`
	Eligible    int           `json:"eligible"`
	Inflight    int64         `json:"inflight"`
	MaxInflight int           `json:"max_inflight"`
	Routes      []routeView   `json:"routes"`
}

// routeView is a route as a pool lists it: its name (or index) and match.
type routeView struct {
	Name        string            `json:"name"`
	Index       int               `json:"index"`
	Match       config.RouteMatch `json:"match"`
	StripPrefix bool              `json:"strip_prefix,omitempty"`
}

// listPools is GET /admin/pools: every pool with its policy, its backend
// and eligible counts from the backends' snapshots, and the routes that
// send requests to it. Without routes the pool "default" takes every
// request, which its routes list says as one catch-all entry.
func (s *Server) listPools(w http.ResponseWriter, _ *http.Request) {
	t := s.o.Control.Table()
	out := make([]poolView, 0, len(t.Pools))
	for _, p := range t.Pools {
		v := poolView{Name: p.Name, Policy: p.Policy, Sticky: p.Sticky, Canary: p.Canary,
			MaxInflight: p.Settings.MaxInflight, Routes: []routeView{}}
		if sched, ok := s.o.Control.Scheduler(p.Name); ok {
			for _, h := range sched.Picker().Backends() {
				v.Backends++
				if h.Snapshot().Eligible {
					v.Eligible++
				}
				v.Inflight += h.Inflight()
			}
		}
		for i, r := range t.Routes {
			if r.Pool == p.Name {
				v.Routes = append(v.Routes, routeView{Name: r.RouteName(i), Index: i, Match: r.Match, StripPrefix: r.StripPrefix})
			}
		}
		if len(t.Routes) == 0 && p.Name == config.DefaultPool {
			v.Routes = append(v.Routes, routeView{Name: "*", Index: -1})
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"pools": out})
}

// reload is POST /admin/reload: the config file read again and applied as
// SIGHUP does, or with dry_run=1 only planned. 200 with the plan; 400 with
// every problem, each in "problems" too, when the file or a setting is
// refused, and then nothing changed.
func (s *Server) reload(w http.ResponseWriter, r *http.Request) {
	dry := false
	if q := r.URL.Query(); q.Has("dry_run") {
		on, err := onOff("dry_run", q.Get("dry_run"))
		if err != nil {
			s.fail(w, err)
			return
		}
		dry = on
	}
	s.o.Logger.Info("admin reload", "dry_run", dry, "by", r.RemoteAddr)
	plan, err := s.o.Control.ReloadFile(r.Context(), dry)
	if err != nil {
		writeProblems(w, http.StatusBadRequest, "config reload refused; the running configuration is unchanged", err)
		return
	}
	writeJSON(w, http.StatusOK, plan)
}

// writeProblems writes an error whose every line is a problem: the first
// as "error", all of them as "problems", a JSON array.
func writeProblems(w http.ResponseWriter, status int, summary string, err error) {
	var lines []string
	if ve, ok := errors.AsType[*config.ValidationError](err); ok {
		for _, p := range ve.Problems {
			lines = append(lines, p.String())
		}
	} else {
		lines = strings.Split(err.Error(), "\n")
	}
	writeJSON(w, status, map[string]any{"error": summary + ": " + lines[0], "problems": lines})
}

// discovery is GET /admin/discovery: every DNS source with its last
// success, last error, members and next refresh.
func (s *Server) discovery(w http.ResponseWriter, _ *http.Request) {
	if s.o.Discovery == nil {
		writeJSON(w, http.StatusOK, map[string]any{"sources": []any{}})
		return
	}
	writeJSON(w, http.StatusOK, s.o.Discovery())
}

// fleet is GET /admin/fleet: this replica (name, connected, revision
// applied), the etcd it talks to and the live replicas.
func (s *Server) fleet(w http.ResponseWriter, _ *http.Request) {
	if s.o.Fleet == nil {
		writeJSON(w, http.StatusOK, map[string]any{"enabled": false})
		return
	}
	writeJSON(w, http.StatusOK, s.o.Fleet())
}

// outliers is GET /admin/outliers: the backends of the pool that the
// outlier detector has ejected right now, why, since when, until when and
// how many times each was ejected. The report is read, never asked, so the
// endpoint answers even while the detector is busy.
func (s *Server) outliers(w http.ResponseWriter, r *http.Request) {
	if s.o.Outliers == nil {
		writeError(w, http.StatusNotFound, "no outlier detection in this lbd")
		return
	}
	rep, ok := s.o.Outliers(poolOf(r))
	if !ok {
		_, err := s.schedulerOf(poolOf(r))
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}
