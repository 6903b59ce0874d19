package scheduler

import (
	"context"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/actor"
	"github.com/lbd/lbd/backendactor"
)

// TestWarmupRampsEveryPolicy adds a backend at runtime next to one of the
// initial config and checks, for each policy, that the newcomer's share of
// picks follows its warm-up factor: 10% of its weight at first, 55% half way
// through the 30 s ramp, all of it at the end. rr and wrr are measured with
// each pick released at once; lc and p2c-ewma, which weigh requests in
// flight, with the picks held, as concurrent requests would be.
func TestWarmupRampsEveryPolicy(t *testing.T) {
	cases := []struct {
		policy string
		hold   bool
		tol    float64
	}{
		{RR, false, 0.03},
		{WRR, false, 0.025}, // weights in tenths while warming: 0.55 becomes 6:10
		{LC, true, 0.01},
		{P2CEWMA, true, 0.01},
	}
	for _, c := range cases {
		t.Run(c.policy, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s, _ := newSched(t, c.policy, 1)
				start := time.Now()
				fresh, err := s.Add(context.Background(), Spec{URL: url(1), Weight: 1})
				require.NoError(t, err)
				for _, step := range []struct {
					at     time.Duration
					factor float64
				}{{0, 0.1}, {15 * time.Second, 0.55}, {30 * time.Second, 1}} {
					<-time.After(time.Until(start.Add(step.at)))
					synctest.Wait()
					require.InDelta(t, step.factor, fresh.Snapshot().WarmFactor, 0.03, "at %v", step.at)
					want := step.factor / (1 + step.factor)
					require.InDelta(t, want, shareOf(t, s, fresh, c.hold), c.tol, "%s at %v: share of the warming backend", c.policy, step.at)
				}
			})
		})
	}
}

// shareOf makes 1100 picks and returns the share that went to h: each
// released at once, or all held until the end.
func shareOf(t *testing.T, s *Scheduler, h *backendactor.Handle, hold bool) float64 {
	t.Helper()
	const n = 1100
	var held []*backendactor.Handle
	got := 0
	for range n {
		p, err := s.Picker().Pick(req, "", nil)
		require.NoError(t, err)
		if p == h {
			got++
		}
		if hold {
			held = append(held, p)
		} else {
			p.Release(time.Millisecond, backendactor.Success)
		}
	}
	for _, p := range held {
		p.Release(time.Millisecond, backendactor.Success)
	}
	return float64(got) / n
}

func TestOnlyBackendsAddedAtRuntimeStartUnhealthy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := New(Config{
			Policy: RR, Registry: actor.NewRegistry(), Logger: quiet, Rand: rand.New(rand.NewPCG(1, 2)),
			Backend: backendactor.Config{StartUnhealthy: true, Rise: 2, Fall: 2},
		})
		require.NoError(t, err)
		defer func() { require.NoError(t, s.Stop(context.Background())) }()
		initial, err := s.Add(context.Background(), Spec{URL: url(0), Initial: true})
		require.NoError(t, err)
		added, err := s.Add(context.Background(), Spec{URL: url(1)})
		require.NoError(t, err)
		require.Equal(t, backendactor.StateHealthy, initial.Snapshot().State, "lbd serves at once at start")
		require.Equal(t, backendactor.StateUnhealthy, added.Snapshot().State, "a newcomer waits for its first probe")
		require.NoError(t, added.HealthResult(context.Background(), true, time.Now(), "status 200"))
		synctest.Wait()
		require.True(t, added.Snapshot().Eligible)
	})
}
