package scheduler

import (
	"context"
	"errors"
	"fmt"

	"github.com/lbd/lbd/actor"
	"github.com/lbd/lbd/backendactor"
)

// setRules replaces the backend template's rules; the reply is the backend
// set at that moment, whose actors the caller then tells.
type setRules struct {
	rules backendactor.Rules
	reply chan<- []*backendactor.Handle
}

// SetRules changes the pool's backend rules (breaker, rise and fall,
// warm-up, whether active checks run) while it runs: backends added from
// now on start under them, and each current backend's actor gets them by
// backendactor.Handle.SetRules (see there for when each rule takes effect),
// keeping its state. The template changes first, in the scheduler's
// mailbox, so a backend added meanwhile is under the new rules either way.
// Every backend is asked, with ctx, even after one fails; the first error
// is returned, naming its backend. A backend whose actor stopped (removed
// meanwhile) is skipped. Invalid rules change nothing.
func (s *Scheduler) SetRules(ctx context.Context, r backendactor.Rules) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("pool %s: %w: %v", s.name, ErrInvalid, err)
	}
	hs, err := ask(ctx, s, func(c chan<- []*backendactor.Handle) any { return setRules{r, c} })
	if err != nil {
		return err
	}
	var first error
	for _, h := range hs {
		if err := h.SetRules(ctx, r); err != nil && !errors.Is(err, actor.ErrStopped) && first == nil {
			first = fmt.Errorf("pool %s: backend %s: set rules: %w", s.name, h.URL(), err)
		}
	}
	return first
}

// Rules returns the rules backends added now would start under.
func (s *Scheduler) Rules(ctx context.Context) (backendactor.Rules, error) {
	st, err := s.Status(ctx)
	return st.Rules, err
}
