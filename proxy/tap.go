package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbd/lbd/backendactor"
	"github.com/lbd/lbd/feed"
	"github.com/lbd/lbd/scheduler"
)

// Tap is the live tap of routing decisions (GET /admin/tap): while someone
// listens, each proxied request is told to the listeners whose filter it
// passes, as one TapEvent: where it went, which backends were candidates
// and why the others were not, what each try answered.
//
// It costs nothing when no one listens: the request path looks at the
// listener list once (one atomic load) and records nothing more. While
// someone listens, a request records its pick's explanation
// (scheduler.Picker.PickExplain) and its tries, and at its end is encoded
// once for every listener that wants it; a listener that cannot keep up
// misses events (lbd_tap_dropped_total) rather than slow a request.
type Tap struct {
	hub *feed.Hub[*tapDone]
}

// TapFilter selects the requests a listener sees; empty fields match all.
type TapFilter struct {
	Pool string
	// Backend is a backend's URL (normalised) or name: the request was
	// sent to it, on any try.
	Backend string
	// Status is a class ("5xx", "4xx", "2xx", ...) or a code ("503").
	Status string
}

// ErrBadFilter is what Subscribe refuses a filter with.
var ErrBadFilter = errors.New("bad tap filter")

// tapBuffer is how many encoded events a listener may be behind before
// it drops: a second of a busy lbd at a few thousand requests per second.
const tapBuffer = 4096

func newTap(reg prometheus.Registerer) *Tap {
	t := &Tap{hub: feed.New[*tapDone]()}
	if reg != nil {
		reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "lbd_tap_dropped_total",
				Help: "Tap events a listener of /admin/tap missed because it fell behind.",
			}, func() float64 { return float64(t.hub.Dropped()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "lbd_tap_events_total", Help: "Tap events sent to listeners of /admin/tap.",
			}, func() float64 { return float64(t.hub.Sent()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "lbd_tap_listeners", Help: "Listeners of /admin/tap.",
			}, func() float64 { return float64(t.hub.Listeners()) }))
	}
	return t
}

// TapStream is one listener's subscription: encoded TapEvents.
type TapStream = feed.Sub[*tapDone]

// Subscribe adds a listener. Close the stream when done.
func (t *Tap) Subscribe(f TapFilter) (*TapStream, error) {
	match, err := f.matcher()
	if err != nil {
		return nil, err
	}
	return t.hub.Subscribe(match, tapBuffer)
}

// Listeners returns the number of listeners.
func (t *Tap) Listeners() int { return t.hub.Listeners() }

// Dropped counts the events listeners missed.
func (t *Tap) Dropped() uint64 { return t.hub.Dropped() }

// Close ends every listener's stream.
func (t *Tap) Close() { t.hub.Close() }

func (f TapFilter) matcher() (func(*tapDone) bool, error) {
	lo, hi := 0, 1000
	switch s := f.Status; {
	case s == "":
	case len(s) == 3 && s[1:] == "xx" && s[0] >= '1' && s[0] <= '5':
		lo = int(s[0]-'0') * 100
		hi = lo + 100
	default:
		n, err := strconv.Atoi(s)
		if err != nil || n < 100 || n > 599 {
			return nil, fmt.Errorf("%w: status: want 2xx, 4xx, 5xx (any class 1xx-5xx) or a code 100-599, got %q", ErrBadFilter, s)
		}
		lo, hi = n, n+1
	}
	return func(d *tapDone) bool {
		st := d.st
		if f.Pool != "" && (st.pool == nil || st.pool.name != f.Pool) {
			return false
		}
		if st.status < lo || st.status >= hi {
			return false
		}
		if f.Backend == "" {
			return true
		}
		for _, a := range d.st.tap.attempts {
			if a.h.URL() == f.Backend || (a.h.Name() != "" && a.h.Name() == f.Backend) {
				return true
			}
		}
		return false
	}, nil
}

// tapRecord is what a request records while someone listens.
type tapRecord struct {
	ex       scheduler.Explanation
	picked   bool // ex holds a pick's explanation
	attempts []tapTry
	first    [2]tapTry // attempts' first backing array: most requests have one try, a retried one two
}

func newTapRecord() *tapRecord {
	r := &tapRecord{}
	r.attempts = r.first[:0]
	return r
}

type tapTry struct {
	h      *backendactor.Handle
	status int
	lat    time.Duration
	err    string
}

// tapDone is a finished request on its way to the listeners.
type tapDone struct {
	st *reqState
	r  *http.Request
	d  time.Duration
}

// TapEvent is one proxied request as /admin/tap streams it.
type TapEvent struct {
	ReqID      string         `json:"req_id"`
	Time       time.Time      `json:"time"` // arrival
	Method     string         `json:"method"`
	Host       string         `json:"host"`
	Path       string         `json:"path"`
	Client     string         `json:"client"`
	Pool       string         `json:"pool"`
	Route      string         `json:"route"`
	Policy     string         `json:"policy"`
	By         string         `json:"by,omitempty"` // policy, sticky or canary
	Backend    string         `json:"backend"`      // the backend that answered ("" when none did)
	Name       string         `json:"name,omitempty"`
	Status     int            `json:"status"`
	LatencyMs  float64        `json:"latency_ms"`
	Reject     string         `json:"reject"` // X-Lbd-Reject when lbd answered itself
	Sampled    []string       `json:"sampled,omitempty"`
	Candidates []TapCandidate `json:"candidates"`
	Attempts   []TapAttempt   `json:"attempts"`
}

// TapCandidate is one backend of the pool as the request's (last) pick saw it.
type TapCandidate struct {
	Backend    string  `json:"backend"`
	Name       string  `json:"name,omitempty"`
	Eligible   bool    `json:"eligible"`
	Reason     string  `json:"reason,omitempty"` // draining, ejected, unhealthy, breaker_open, half_open_busy, capped, tried
	State      string  `json:"state"`
	Cost       float64 `json:"cost,omitempty"` // p2c-ewma: EWMA ns x (inflight+1) / weight; lc: (inflight+1) / weight
	EWMAMs     float64 `json:"ewma_ms"`
	Inflight   int64   `json:"inflight"`
	Weight     int     `json:"weight"`
	WarmFactor float64 `json:"warm_factor"`
	Sampled    bool    `json:"sampled,omitempty"` // one of the two p2c-ewma drew
	Chosen     bool    `json:"chosen,omitempty"`
	Canary     bool    `json:"canary,omitempty"`
}

// TapAttempt is one try of the request.
type TapAttempt struct {
	Backend   string  `json:"backend"`
	Name      string  `json:"name,omitempty"`
	Status    int     `json:"status"` // 0: no response
	LatencyMs float64 `json:"latency_ms"`
	Error     string  `json:"error,omitempty"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }

// event builds the request's TapEvent.
func (d *tapDone) event() *TapEvent {
	st, r, rec := d.st, d.r, d.st.tap
	e := &TapEvent{
		ReqID: st.id, Time: st.start, Method: r.Method, Host: r.Host, Path: r.URL.Path, Client: st.client,
		Status: st.status, LatencyMs: ms(d.d), Reject: st.rejected,
		Candidates: []TapCandidate{}, Attempts: make([]TapAttempt, 0, len(rec.attempts)),
	}
	if st.route != nil {
		e.Route = st.route.name
	}
	if st.pool != nil {
		e.Pool = st.pool.name
		e.Policy = st.pool.picker().Policy()
	}
	if st.backend != nil && st.rejected == "" {
		e.Backend, e.Name = st.backend.URL(), st.backend.Name()
	}
	if rec.picked {
		e.Policy, e.By = rec.ex.Policy, rec.ex.By
		for _, c := range rec.ex.Candidates {
			e.Candidates = append(e.Candidates, TapCandidate{
				Backend: c.Handle.URL(), Name: c.Handle.Name(), Eligible: c.Eligible, Reason: c.Reason, State: c.State,
				Cost: c.Cost, EWMAMs: ms(c.EWMA), Inflight: c.Inflight, Weight: c.Weight, WarmFactor: c.WarmFactor,
				Sampled: c.Sampled, Chosen: c.Chosen, Canary: c.Canary,
			})
			if c.Sampled {
				e.Sampled = append(e.Sampled, c.Handle.URL())
			}
		}
	}
	for _, a := range rec.attempts {
		e.Attempts = append(e.Attempts, TapAttempt{Backend: a.h.URL(), Name: a.h.Name(), Status: a.status,
			LatencyMs: ms(a.lat), Error: a.err})
	}
	return e
}

func encodeTap(d *tapDone) []byte { return d.event().AppendJSON(make([]byte, 0, 1024)) }

// The request path's hooks. Each is a nil check when no one listens.

// pick picks the request's backend from its pool's picker, explained when
// someone listens.
func (s *reqState) pick(r *http.Request) (*backendactor.Handle, error) {
	p := s.pool.picker()
	if s.tap == nil {
		return p.Pick(r, s.client, s.tried())
	}
	s.tap.picked = true
	return p.PickExplain(r, s.client, s.tried(), &s.tap.ex)
}

// tapTry records one try's outcome.
func (s *reqState) tapTry(h *backendactor.Handle, resp *http.Response, err error, lat time.Duration) {
	if s.tap == nil {
		return
	}
	t := tapTry{h: h, lat: lat}
	if resp != nil {
		t.status = resp.StatusCode
	}
	if err != nil {
		t.err = err.Error()
	}
	s.tap.attempts = append(s.tap.attempts, t)
}

// tapFinish hands the finished request to the listeners.
func (t *Tap) finish(st *reqState, r *http.Request, d time.Duration) {
	t.hub.Publish(&tapDone{st: st, r: r, d: d}, encodeTap)
}
