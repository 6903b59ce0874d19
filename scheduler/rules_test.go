package scheduler

import (
	"context"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/actor"
	"github.com/lbd/lbd/backendactor"
)

func failN(t *testing.T, h *backendactor.Handle, n int) {
	t.Helper()
	for range n {
		require.True(t, h.Acquire())
		h.Release(time.Millisecond, backendactor.GatewayError)
	}
}

func TestSetRulesReachesEveryBackendAndTheTemplate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, hs := newSched(t, RR, 1, 1, 1) // threshold 5, checks off
		ctx := context.Background()
		r, err := s.Rules(ctx)
		require.NoError(t, err)
		require.Equal(t, 5, r.Breaker.FailureThreshold)
		r.Breaker.FailureThreshold, r.HealthChecked = 2, true
		require.NoError(t, s.SetRules(ctx, r))
		got, err := s.Rules(ctx)
		require.NoError(t, err)
		require.Equal(t, r, got)

		added, err := s.Add(ctx, Spec{URL: url(3), Weight: 1})
		require.NoError(t, err)
		require.Equal(t, backendactor.StateUnhealthy, added.Snapshot().State, "checks on: a new backend waits for its first probe")
		for _, h := range hs {
			failN(t, h, 2)
		}
		synctest.Wait()
		for _, h := range hs {
			require.Equal(t, backendactor.Open, h.Snapshot().Breaker, "%s: opened at the new threshold", h.URL())
		}

		r.HealthChecked = false
		require.NoError(t, s.SetRules(ctx, r))
		require.True(t, added.Snapshot().Eligible, "checks off: the pending backend is up")
		later, err := s.Add(ctx, Spec{URL: url(4), Weight: 1})
		require.NoError(t, err)
		require.NotEqual(t, backendactor.StateUnhealthy, later.Snapshot().State, "checks off: a new backend starts up")
		failN(t, later, 2)
		synctest.Wait()
		require.Equal(t, backendactor.Open, later.Snapshot().Breaker, "the template's threshold")
	})
}

func TestSetRulesRefusesInvalidRules(t *testing.T) {
	s, _ := newSched(t, RR, 1)
	ctx := context.Background()
	before, err := s.Rules(ctx)
	require.NoError(t, err)
	bad := before
	bad.Fall = -1
	err = s.SetRules(ctx, bad)
	require.ErrorIs(t, err, ErrInvalid)
	require.ErrorContains(t, err, "pool default")
	after, err := s.Rules(ctx)
	require.NoError(t, err)
	require.Equal(t, before, after, "nothing changed")
}

func TestSetRulesSkipsARemovedBackend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, hs := newSched(t, RR, 1, 1)
		ctx := context.Background()
		require.NoError(t, s.Remove(ctx, url(0), time.Minute, "test remove"))
		<-hs[0].Done()
		r, err := s.Rules(ctx)
		require.NoError(t, err)
		r.Breaker.FailureThreshold = 1
		require.NoError(t, s.SetRules(ctx, r))
		failN(t, hs[1], 1)
		synctest.Wait()
		require.Equal(t, backendactor.Open, hs[1].Snapshot().Breaker)
	})
}

// stallingLog blocks the goroutine that logs msg until release is closed:
// a backend actor logging an unknown message is then busy, as one stuck
// behind a slow operation would be.
type stallingLog struct {
	slog.Handler
	msg     string
	release chan struct{}
}

func (h stallingLog) Enabled(context.Context, slog.Level) bool { return true }
func (h stallingLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		<-h.release
	}
	return nil
}

func TestSetRulesNamesTheBackendThatDidNotTakeThem(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		log := slog.New(stallingLog{Handler: quiet.Handler(), msg: "backend actor: unknown message", release: release})
		s, err := New(Config{Name: "api", Policy: RR, Registry: actor.NewRegistry(), Logger: log,
			Backend: backendactor.Config{Mailbox: 1, Breaker: backendactor.BreakerConfig{FailureThreshold: 5, OpenFor: time.Second}}})
		require.NoError(t, err)
		ctx := context.Background()
		var hs []*backendactor.Handle
		for i := range 3 {
			h, err := s.Add(ctx, Spec{URL: url(i), Weight: 1, Initial: true})
			require.NoError(t, err)
			hs = append(hs, h)
		}
		stuck := hs[2]
		require.NoError(t, stuck.Ref().Tell(struct{}{})) // logged: the actor stalls
		synctest.Wait()
		require.NoError(t, stuck.Ref().Tell(struct{}{})) // and its mailbox of one is full

		r, err := s.Rules(ctx)
		require.NoError(t, err)
		r.Breaker.FailureThreshold = 1
		short, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		err = s.SetRules(short, r)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.ErrorContains(t, err, "pool api: backend "+stuck.URL())
		for _, h := range hs[:2] {
			failN(t, h, 1)
		}
		synctest.Wait()
		for _, h := range hs[:2] {
			require.Equal(t, backendactor.Open, h.Snapshot().Breaker, "%s took the rules", h.URL())
		}
		close(release)
		require.NoError(t, s.Stop(ctx))
	})
}

func TestPoolNamesItsActors(t *testing.T) {
	cases := []struct {
		pool, name, scheduler, backend string
	}{
		{"", "default", "scheduler", url(0)},
		{"default", "default", "scheduler", url(0)},
		{"api", "api", "scheduler:api", "api:" + url(0)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reg := actor.NewRegistry()
			s, err := New(Config{Name: c.pool, Registry: reg, Logger: quiet})
			require.NoError(t, err)
			defer func() { require.NoError(t, s.Stop(context.Background())) }()
			_, err = s.Add(context.Background(), Spec{URL: url(0), Initial: true})
			require.NoError(t, err)
			require.Equal(t, c.name, s.Name())
			require.Equal(t, c.scheduler, s.Ref().Name())
			var names []string
			for _, r := range reg.Refs() {
				names = append(names, r.Name())
			}
			require.ElementsMatch(t, []string{c.scheduler, c.backend}, names)
		})
	}
}

func TestTwoPoolsShareAURL(t *testing.T) {
	reg := actor.NewRegistry()
	ctx := context.Background()
	var hs []*backendactor.Handle
	for _, pool := range []string{"default", "api"} {
		s, err := New(Config{Name: pool, Registry: reg, Logger: quiet})
		require.NoError(t, err)
		defer func() { require.NoError(t, s.Stop(ctx)) }()
		h, err := s.Add(ctx, Spec{URL: url(0), Initial: true})
		require.NoError(t, err)
		hs = append(hs, h)
	}
	require.NotSame(t, hs[0], hs[1], "one actor per pool")
	require.Equal(t, 4, reg.Len())
	require.NoError(t, hs[1].Drain(ctx, "test drain"))
	require.True(t, hs[0].Snapshot().Eligible, "a drain in one pool leaves the other's backend alone")
}
