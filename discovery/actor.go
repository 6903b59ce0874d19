package discovery

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/lbd/lbd/actor"
)

// sourceState is the actor's state; only its goroutine touches it. The
// lookup and delivery goroutines get copies of what they need and report
// back with a lookupDone or a deliverDone.
type sourceState struct {
	cfg    Config
	src    *Source
	ref    *actor.Ref
	name   string
	client client
	sched  schedule
	met    *sourceMetrics
	log    *slog.Logger

	ctx    context.Context // ends when the actor stops: cancels lookup and delivery
	cancel context.CancelFunc
	wg     sync.WaitGroup
	gen    uint64 // bumped by Restart: results of older goroutines are dropped

	// lookups
	looking      bool
	due          time.Time
	failures     int    // failed lookups in a row
	pendingEmpty string // an empty or nxdomain answer not yet repeated
	lookups      uint64
	lastResult   string
	lastErr      string
	lastErrAt    time.Time
	staleSince   time.Time

	// the last good set
	have        bool // a believed answer exists
	members     []Member
	ttl         ttl
	lastSuccess time.Time
	version     uint64 // bumped at each change of members

	// delivery
	delivering     bool
	delivered      uint64 // the version the sink acknowledged
	deliverFailing bool
	deliverErr     string
	deliverErrAt   time.Time
}

// lookupDone is a lookup's result, sent by its goroutine.
type lookupDone struct {
	gen     uint64
	out     outcome
	err     error
	started time.Time // when it was due: the next one is due from here
	at      time.Time // when the answer came
}

// deliverDone is the sink's answer to one Update.
type deliverDone struct {
	gen, version uint64
	err          error
	at           time.Time
}

func (s *sourceState) Bind(r *actor.Ref) { s.ref = r }

// Receive is the table of contents: a source hears only from its own goroutines.
func (s *sourceState) Receive(msg any) {
	switch m := msg.(type) {
	case lookupDone:
		if m.gen == s.gen {
			s.lookupDone(m)
			s.deliver()
		}
	case deliverDone:
		if m.gen == s.gen {
			s.deliverDone(m)
		}
	default:
		s.log.Warn("discovery: unknown message", "type", fmt.Sprintf("%T", msg))
	}
}

// Tick starts the lookup when it is due and offers an undelivered set again.
func (s *sourceState) Tick(now time.Time) {
	if !s.looking && !now.Before(s.due) {
		s.startLookup(now)
	}
	s.deliver()
}

// startLookup runs a lookup on a goroutine of the actor's. The next one is
// scheduled from now, its start, so that a refresh of 1s is one lookup a
// second and not one every 1s plus the time a lookup takes, rounded up to a
// tick; lookups still start at least the floor apart.
func (s *sourceState) startLookup(now time.Time) {
	s.looking = true
	gen, src := s.gen, s.cfg.Source
	s.wg.Go(func() {
		// Every exchange is bounded by Timeout; this bounds the whole
		// lookup, SRV targets included.
		ctx, cancel := context.WithTimeout(s.ctx, 5*s.cfg.Timeout)
		defer cancel()
		var d lookupDone
		func() {
			defer func() { // the answer is outside input: a parsing bug must not take lbd down
				if p := recover(); p != nil {
					d.err = fmt.Errorf("lookup panicked: %v", p)
				}
			}()
			d.out, d.err = s.client.lookup(ctx, src)
		}()
		d.gen, d.started, d.at = gen, now, time.Now()
		_ = s.ref.Send(s.ctx, d) // waits for room, not past Stop
	})
}

func (s *sourceState) lookupDone(m lookupDone) {
	s.looking = false
	s.lookups++
	result := m.out.result
	wait := s.sched.afterAnswer(m.out.ttl, s.cfg.Rand.Float64())
	switch {
	case m.err != nil:
		result = classify(m.err)
		s.failures++
		s.pendingEmpty = ""
		s.stale(m.at, m.err.Error())
		wait = s.sched.afterFailure(s.failures, s.cfg.Rand.Float64())
	case result != ResultSuccess && s.pendingEmpty == "" && (!s.have || len(s.members) > 0):
		// The first empty answer: keep the set until the next lookup
		// repeats it, so one bad answer cannot empty the pool.
		s.failures = 0
		s.pendingEmpty = result
		s.stale(m.at, fmt.Sprintf("%s answer for %s; believed if the next lookup gives it too", result, s.cfg.Source.DNS))
	default:
		s.believe(m.at, m.out)
	}
	s.due = m.started.Add(wait)
	s.lastResult = result
	s.met.lookup(result, len(s.members), unixSeconds(s.lastSuccess), unixSeconds(s.staleSince))
	s.publish()
}

// stale records a lookup that did not confirm the set, and says so in the
// log when the source becomes stale or the reason changes.
func (s *sourceState) stale(at time.Time, reason string) {
	changed := reason != s.lastErr
	s.lastErr, s.lastErrAt = reason, at
	if s.staleSince.IsZero() {
		s.staleSince = at
		s.log.Warn("discovery: lookup did not confirm the set; keeping the last good one",
			"err", reason, "members", len(s.members), "stale_since", at)
	} else if changed {
		s.log.Warn("discovery: still stale", "err", reason, "members", len(s.members), "stale_since", s.staleSince)
	}
}

// believe takes an answer as the truth: the new set, the source current.
func (s *sourceState) believe(at time.Time, out outcome) {
	if !s.staleSince.IsZero() {
		s.log.Info("discovery: source current again", "stale_for", at.Sub(s.staleSince).String(), "members", len(out.members))
	}
	s.staleSince = time.Time{}
	s.failures, s.pendingEmpty = 0, ""
	s.lastSuccess, s.ttl = at, out.ttl
	if !s.have || !slices.Equal(s.members, out.members) {
		added, removed := diffCount(s.members, out.members)
		s.log.Info("discovery: members changed", "members", len(out.members), "added", added, "removed", removed)
		s.members, s.have = out.members, true
		s.version++
	}
}

// deliver hands the current set to the sink unless it has it, or a call is
// in flight (whose deliverDone will bring the next one).
func (s *sourceState) deliver() {
	if s.delivering || !s.have || s.delivered == s.version {
		return
	}
	s.delivering = true
	gen, version := s.gen, s.version
	u := Update{Source: s.name, Pool: s.cfg.Pool, Members: slices.Clone(s.members)}
	if u.Members == nil {
		u.Members = []Member{}
	}
	s.wg.Go(func() {
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.DeliverTimeout)
		defer cancel()
		d := deliverDone{gen: gen, version: version}
		func() {
			defer func() { // the sink is someone else's code
				if p := recover(); p != nil {
					d.err = fmt.Errorf("sink panicked: %v", p)
				}
			}()
			d.err = s.cfg.Apply(ctx, u)
		}()
		d.at = time.Now()
		_ = s.ref.Send(s.ctx, d)
	})
}

func (s *sourceState) deliverDone(m deliverDone) {
	s.delivering = false
	if m.err != nil {
		if !s.deliverFailing || m.err.Error() != s.deliverErr {
			s.log.Warn("discovery: the sink did not take the member set; offering it again", "err", m.err, "members", len(s.members))
		}
		s.deliverFailing = true
		s.deliverErr, s.deliverErrAt = m.err.Error(), m.at
		s.publish()
		return // again at the next tick, not in a tight loop
	}
	if s.deliverFailing {
		s.log.Info("discovery: the sink took the member set", "members", len(s.members))
	}
	s.deliverFailing = false
	s.delivered = max(s.delivered, m.version)
	s.publish()
	s.deliver() // a newer set that came during the call
}

// Restart follows a panic in a handler: the state is rebuilt from the last
// published Status, the goroutines in flight are disowned, and the set is
// offered to the sink again, which is harmless since an Update is complete.
func (s *sourceState) Restart() {
	st := s.src.status.Load()
	s.gen++
	s.looking, s.delivering = false, false
	s.members, s.have = st.Members, !st.LastSuccess.IsZero()
	s.staleSince, s.failures, s.pendingEmpty = st.StaleSince, st.ConsecutiveFailures, ""
	s.version++
	s.due = time.Now()
	s.publish()
}

// Stopped cancels the goroutines in flight, waits for them and removes the
// metric series.
func (s *sourceState) Stopped() {
	s.cancel()
	s.wg.Wait()
	s.met.remove()
}

func (s *sourceState) summary() string {
	state := "current"
	switch {
	case !s.staleSince.IsZero():
		state = "stale since " + s.staleSince.UTC().Format(time.RFC3339)
	case !s.have:
		state = "no answer yet"
	}
	return fmt.Sprintf("members=%d %s next=%s", len(s.members), state, s.due.UTC().Format(time.RFC3339))
}

// diffCount counts the members of b not in a (added) and of a not in b.
func diffCount(a, b []Member) (added, removed int) {
	in := make(map[string]bool, len(a))
	for _, m := range a {
		in[m.URL] = true
	}
	for _, m := range b {
		if !in[m.URL] {
			added++
		}
		delete(in, m.URL)
	}
	return added, len(in)
}

func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}
