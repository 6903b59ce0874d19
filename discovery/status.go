package discovery

import (
	"time"
)

// Update is what a source hands its sink: the full current member set of
// one source, never a delta, so the receiver diffs it against what it runs
// and an Update lost or superseded costs nothing.
type Update struct {
	// Source names the source: "dns:srv:NAME" or "dns:a:NAME"
	// (config.Discovery.SourceName); the members' owner in /admin/backends.
	Source string
	// Pool is the pool the members belong to.
	Pool string
	// Members is sorted by address then port; empty means the source has
	// (believably) no members. The slice is the receiver's.
	Members []Member
}

// Status is a source's state for GET /admin/discovery, published by the
// actor after every lookup and delivery. It is never modified once
// published.
type Status struct {
	Source   string `json:"source"`
	Pool     string `json:"pool"`
	DNS      string `json:"dns"`
	Type     string `json:"type"`
	Resolver string `json:"resolver"` // IP:port, or "" for /etc/resolv.conf's
	Refresh  string `json:"refresh"`

	// MemberCount and Members are the last good set: what the sink has, or
	// will get once it takes it (Delivered).
	MemberCount int      `json:"member_count"`
	Members     []Member `json:"members"`

	// LastResult is the last lookup's result (success, empty, nxdomain,
	// timeout, servfail, refused, error); "" before the first one.
	LastResult string `json:"last_result,omitempty"`
	// LastSuccess is when a lookup last gave an answer that was believed.
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// StaleSince is when lookups stopped confirming the set (a failure, or
	// an empty answer not yet repeated); zero while the set is current.
	StaleSince          time.Time `json:"stale_since,omitzero"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
	// TTL is the lowest TTL of the last answer, when it had one.
	TTL         string    `json:"ttl,omitempty"`
	NextRefresh time.Time `json:"next_refresh,omitzero"`
	Lookups     uint64    `json:"lookups"`

	// Delivered is true when the sink has acknowledged the current set.
	Delivered           bool      `json:"delivered"`
	LastDeliveryError   string    `json:"last_delivery_error,omitempty"`
	LastDeliveryErrorAt time.Time `json:"last_delivery_error_at,omitzero"`
}

// Stale reports whether the set is not confirmed by the latest lookup.
func (s *Status) Stale() bool { return !s.StaleSince.IsZero() }

// publish stores the state as a new Status.
func (s *sourceState) publish() {
	st := &Status{
		Source: s.name, Pool: s.cfg.Pool, DNS: s.cfg.Source.DNS, Type: s.cfg.Source.Type,
		Resolver: s.cfg.Source.Resolver, Refresh: s.cfg.Source.Refresh.D().String(),
		MemberCount: len(s.members), Members: s.members, // never changed in place: shared
		LastResult: s.lastResult, LastSuccess: s.lastSuccess,
		LastError: s.lastErr, LastErrorAt: s.lastErrAt,
		StaleSince: s.staleSince, ConsecutiveFailures: s.failures,
		NextRefresh: s.due, Lookups: s.lookups,
		Delivered:         s.have && s.delivered == s.version,
		LastDeliveryError: s.deliverErr, LastDeliveryErrorAt: s.deliverErrAt,
	}
	if st.Members == nil {
		st.Members = []Member{}
	}
	if s.ttl.set {
		st.TTL = s.ttl.d.String()
	}
	s.src.status.Store(st)
	if s.ref != nil {
		s.ref.SetState(s.summary())
	}
}
