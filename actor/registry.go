package actor

import (
	"slices"
	"strings"
	"sync"
	"time"
)

// Registry lists the running actors of one lbd instance. It holds no actor
// state: only the addresses, whose counters are atomics the actors update.
type Registry struct {
	mu     sync.Mutex
	actors map[*Ref]struct{}
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{actors: make(map[*Ref]struct{})}
}

func (g *Registry) add(r *Ref) {
	g.mu.Lock()
	g.actors[r] = struct{}{}
	g.mu.Unlock()
}

func (g *Registry) remove(r *Ref) {
	g.mu.Lock()
	delete(g.actors, r)
	g.mu.Unlock()
}

// Len returns the number of running actors.
func (g *Registry) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.actors)
}

// Refs returns the addresses of every running actor, sorted by name.
func (g *Registry) Refs() []*Ref {
	g.mu.Lock()
	out := make([]*Ref, 0, len(g.actors))
	for r := range g.actors {
		out = append(out, r)
	}
	g.mu.Unlock()
	slices.SortFunc(out, func(a, b *Ref) int { return strings.Compare(a.name, b.name) })
	return out
}

// Stats is one actor's row in /debug/actors.
type Stats struct {
	Name          string    `json:"name"`
	Kind          string    `json:"kind"`
	MailboxLen    int       `json:"mailbox_len"`
	MailboxCap    int       `json:"mailbox_cap"`
	Processed     uint64    `json:"processed"`
	Dropped       uint64    `json:"dropped"`
	Restarts      uint64    `json:"restarts"`
	LastMessageAt time.Time `json:"last_message_at"`
	State         string    `json:"state"`
}

// Stats returns the actor's current figures.
func (r *Ref) Stats() Stats {
	s := Stats{
		Name: r.name, Kind: r.kind,
		MailboxLen: len(r.mailbox), MailboxCap: cap(r.mailbox),
		Processed: r.processed.Load(), Dropped: r.dropped.Load(), Restarts: r.restarts.Load(),
	}
	if ns := r.lastMsg.Load(); ns != 0 {
		s.LastMessageAt = time.Unix(0, ns).UTC()
	}
	if st := r.state.Load(); st != nil {
		s.State = *st
	}
	return s
}

// Snapshot returns every running actor's Stats, sorted by kind then name.
func (g *Registry) Snapshot() []Stats {
	g.mu.Lock()
	out := make([]Stats, 0, len(g.actors))
	for r := range g.actors {
		out = append(out, r.Stats())
	}
	g.mu.Unlock()
	slices.SortFunc(out, func(a, b Stats) int {
		if c := strings.Compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}
