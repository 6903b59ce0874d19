package backendactor

import "time"

// Backend states as API.md names them, in the order they win when several hold.
const (
	StateDraining  = "draining"
	StateEjected   = "ejected"
	StateUnhealthy = "unhealthy"
	StateWarming   = "warming"
	StateHealthy   = "healthy"
)

// States lists every backend state, for metrics that enumerate them.
var States = []string{StateHealthy, StateWarming, StateUnhealthy, StateEjected, StateDraining}

// Snapshot is what a backend actor publishes for the request path. The actor
// never changes a Snapshot after storing it; readers may keep the pointer.
type Snapshot struct {
	// What every pick reads comes first, so that it shares a cache line.
	Eligible bool // healthy, not drained, not ejected, breaker not open
	Breaker  BreakerState
	// Aging is set by the actor at its first tick past the grace without a
	// sample (and before the first sample): from then on EWMA is stale, and
	// readers decay it with their own clock (Handle.Latency). While it is
	// false a reader needs no clock at all.
	Aging       bool
	MaxInflight int64         // 0 = no cap
	EWMA        time.Duration // the peak-EWMA latency as of Sampled
	Weight      int           // configured weight
	WarmFactor  float64       // (0,1]: share of the weight the warm-up ramp allows now

	URL     string
	Name    string // the backend's optional name (Config.Label)
	State   string
	Sampled time.Time // when the last sample was folded; zero before the first
	Decay   Decay     // how EWMA ages after Sampled (see EWMA.Read)
	Version uint64
}

// Latency is the EWMA as of now: it decays once the backend has gone
// without samples for longer than the grace (see EWMA).
func (s *Snapshot) Latency(now time.Time) time.Duration {
	return EWMA{Value: s.EWMA, At: s.Sampled}.Read(now, s.Decay)
}

// EffectiveWeight is the weight scaled by the warm-up ramp.
func (s *Snapshot) EffectiveWeight() float64 { return float64(s.Weight) * s.WarmFactor }

// Stats is a backend's full report, answered by the actor on request.
type Stats struct {
	URL                string       `json:"url"`
	Weight             int          `json:"weight"`
	State              string       `json:"state"`
	Breaker            BreakerState `json:"breaker"`
	Inflight           int64        `json:"inflight"`
	MaxInflight        int64        `json:"max_inflight"`
	EWMAMillis         float64      `json:"ewma_ms"`
	Requests           uint64       `json:"requests"`
	Failures           uint64       `json:"failures"`
	WarmupRemainingMs  int64        `json:"warmup_remaining_ms"`
	WarmFactor         float64      `json:"warm_factor"`
	Healthy            bool         `json:"healthy"`
	Draining           bool         `json:"draining"`
	EjectedUntil       *time.Time   `json:"ejected_until,omitempty"`
	EjectedAt          *time.Time   `json:"ejected_at,omitempty"`
	EjectReason        string       `json:"eject_reason,omitempty"`
	Ejections          int          `json:"ejections"`
	BreakerTrips       int          `json:"breaker_trips"`
	BreakerOpenUntil   *time.Time   `json:"breaker_open_until,omitempty"`
	Consecutive5xx     int64        `json:"consecutive_5xx"`
	ConsecutiveGateway int64        `json:"consecutive_gateway_failures"`
	LastProbe          *time.Time   `json:"last_probe,omitempty"`
	LastProbeDetail    string       `json:"last_probe_detail,omitempty"`
	// StateCause says why the backend is in its state, since StateSince;
	// BreakerCause why its breaker is where it is (empty while it has
	// always been closed). Both are the causes of the last transitions
	// (GET /admin/events).
	StateCause   string     `json:"state_cause,omitempty"`
	StateSince   *time.Time `json:"state_since,omitempty"`
	BreakerCause string     `json:"breaker_cause,omitempty"`
}
