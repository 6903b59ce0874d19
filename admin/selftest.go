package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lbd/lbd/actor"
	"github.com/lbd/lbd/backendactor"
)

// GET /admin/selftest asks each subsystem within one deadline: every
// registered actor answers a ping (its loop takes messages), the scheduler
// answers and its picker can pick (the slot is given back at once), the
// metrics registry gathers, and any extra checks the daemon registered
// (Options.Checks). 200 when all pass, 500 with the details otherwise.

// checkResult is one line of the selftest report.
type checkResult struct {
	Name     string  `json:"name"`
	OK       bool    `json:"ok"`
	Detail   string  `json:"detail,omitempty"`
	Millis   float64 `json:"duration_ms"`
	duration time.Duration
}

type selftestReport struct {
	OK     bool          `json:"ok"`
	Checks []checkResult `json:"checks"`
}

func (s *Server) selftest(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	checks := map[string]func(context.Context) (string, error){
		"actors":    s.pingActors,
		"scheduler": s.pickOnce,
		"metrics":   s.gather,
	}
	for name, fn := range s.o.Checks {
		checks[name] = fn
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	rep := selftestReport{OK: true}
	for name, fn := range checks {
		wg.Go(func() {
			start := time.Now()
			detail, err := fn(ctx)
			c := checkResult{Name: name, OK: err == nil, Detail: detail}
			if err != nil {
				c.Detail = err.Error()
			}
			c.Millis = float64(time.Since(start).Microseconds()) / 1000
			mu.Lock()
			rep.Checks = append(rep.Checks, c)
			rep.OK = rep.OK && c.OK
			mu.Unlock()
		})
	}
	wg.Wait()
	sort.Slice(rep.Checks, func(i, j int) bool { return rep.Checks[i].Name < rep.Checks[j].Name })
	status := http.StatusOK
	if !rep.OK {
		status = http.StatusInternalServerError
	}
	writeJSON(w, status, rep)
}

// pingActors pings every registered actor at once and names the silent ones.
// An actor that stopped meanwhile (a backend removed a moment ago finishing
// its drain) has left the system, not failed it: its goroutine exits only
// when told to, and it leaves the registry as it does.
func (s *Server) pingActors(ctx context.Context) (string, error) {
	refs := s.o.Registry.Refs()
	errs := make([]error, len(refs))
	var wg sync.WaitGroup
	for i, ref := range refs {
		wg.Go(func() { errs[i] = ref.Ping(ctx) })
	}
	wg.Wait()
	var silent []string
	stopped := 0
	for i, err := range errs {
		switch {
		case errors.Is(err, actor.ErrStopped):
			stopped++
		case err != nil:
			silent = append(silent, refs[i].Name())
		}
	}
	if len(silent) > 0 {
		return "", fmt.Errorf("%d of %d actors did not answer: %s", len(silent), len(refs)-stopped, strings.Join(silent, ", "))
	}
	if stopped > 0 {
		return fmt.Sprintf("%d actors answered, %d stopped meanwhile", len(refs)-stopped, stopped), nil
	}
	return fmt.Sprintf("%d actors answered", len(refs)), nil
}

// pickOnce asks each pool's scheduler for its status and picks through
// its current picker, releasing the slot as a canceled request so no
// statistics move. A pool with no backend is reported, not failed: it is
// a configuration, not a broken subsystem; a pool whose backends exist and
// none can be picked fails.
func (s *Server) pickOnce(ctx context.Context) (string, error) {
	var parts []string
	for _, p := range s.o.Control.Table().Pools {
		sched, ok := s.o.Control.Scheduler(p.Name)
		if !ok {
			return "", fmt.Errorf("pool %s has no running scheduler", p.Name)
		}
		st, err := sched.Status(ctx)
		if err != nil {
			return "", fmt.Errorf("pool %s: scheduler did not answer: %w", p.Name, err)
		}
		if len(st.Backends) == 0 {
			parts = append(parts, fmt.Sprintf("%s: no backends", p.Name))
			continue
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
		if err != nil {
			return "", err
		}
		h, err := sched.Picker().Pick(req, "selftest", nil)
		if err != nil {
			return "", fmt.Errorf("pool %s: policy %s over %d backends cannot pick: %w", p.Name, st.Policy, len(st.Backends), err)
		}
		h.Release(0, backendactor.Canceled)
		parts = append(parts, fmt.Sprintf("%s: policy %s picked %s", p.Name, st.Policy, h.URL()))
	}
	return strings.Join(parts, "; "), nil
}

func (s *Server) gather(context.Context) (string, error) {
	if s.o.Gatherer == nil {
		return "no metrics registry", nil
	}
	mfs, err := s.o.Gatherer.Gather()
	if err != nil {
		return "", fmt.Errorf("gathering metrics: %w", err)
	}
	return fmt.Sprintf("%d metric families", len(mfs)), nil
}
