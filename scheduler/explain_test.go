package scheduler

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/backendactor"
)

// scripted replays a fixed sequence of random numbers, over and over.
type scripted struct {
	seq []uint64
	i   int
}

func (s *scripted) Uint64() uint64 { v := s.seq[s.i%len(s.seq)]; s.i++; return v }

// load gives h a latency history: n requests of d each, folded by its actor.
func load(h *backendactor.Handle, d time.Duration, n int) {
	for range n {
		h.Acquire()
		h.Release(d, backendactor.Success)
	}
}

func byURL(ex *Explanation) map[string]Candidate {
	m := map[string]Candidate{}
	for _, c := range ex.Candidates {
		m[c.Handle.URL()] = c
	}
	return m
}

// A p2c-ewma pick explained: every backend with its reason, the two drawn
// with their costs, and the cheaper of them chosen.
func TestPickExplainP2C(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, hs := newSched(t, P2CEWMA, 1, 1, 1, 1, 1, 1)
		ctx := context.Background()
		require.NoError(t, hs[0].Drain(ctx, "admin drain"))
		require.NoError(t, hs[1].Eject(ctx, time.Now().Add(time.Hour), "consecutive_5xx", "5 consecutive 5xx"))
		require.NoError(t, hs[2].SetCap(ctx, 1))
		require.True(t, hs[2].Acquire()) // at its cap of 1
		for range 5 {
			hs[3].Acquire()
			hs[3].Release(time.Millisecond, backendactor.GatewayError)
		}
		load(hs[4], 10*time.Millisecond, 5)
		load(hs[5], 40*time.Millisecond, 5)
		<-time.After(200 * time.Millisecond) // the actors fold their samples
		synctest.Wait()
		require.Equal(t, backendactor.Open, hs[3].Snapshot().Breaker)

		var ex Explanation
		h, err := s.Picker().PickExplain(req, "10.0.0.1", nil, &ex)
		require.NoError(t, err)
		defer h.Release(time.Millisecond, backendactor.Success)
		require.Equal(t, hs[4], h, "the cheaper of the only two usable")
		require.Equal(t, P2CEWMA, ex.Policy)
		require.Equal(t, ByPolicy, ex.By)
		require.Len(t, ex.Candidates, 6, "every backend of the pool")
		c := byURL(&ex)
		for i, want := range []string{ReasonDraining, ReasonEjected, ReasonCapped, ReasonBreakerOpen, "", ""} {
			require.Equal(t, want, c[url(i)].Reason, "backend %d", i)
			require.Equal(t, want == "", c[url(i)].Eligible, "backend %d", i)
		}
		a, b := c[url(4)], c[url(5)]
		require.True(t, a.Sampled && b.Sampled, "the two p2c drew")
		require.True(t, a.Chosen)
		require.False(t, b.Chosen)
		require.Greater(t, b.Cost, a.Cost)
		require.InDelta(t, float64(a.EWMA+time.Microsecond)*float64(a.Inflight+1)/a.WarmFactor, a.Cost, 1,
			"cost = EWMA x (in flight + 1) / effective weight")
		require.Equal(t, 10*time.Millisecond, a.EWMA)
		require.EqualValues(t, 1, c[url(2)].Inflight)
		for i := range 4 {
			require.False(t, c[url(i)].Sampled)
		}
	})
}

// The explanation is of the decision itself: with the same random draws,
// Pick and PickExplain choose the same backend.
func TestPickExplainFollowsPick(t *testing.T) {
	for _, policy := range []string{RR, WRR, LC, P2CEWMA} {
		t.Run(policy, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { followsPick(t, policy) })
		})
	}
}

// followsPick runs in a bubble, so that no actor tick and no clock moves
// between the two picks of a round.
func followsPick(t *testing.T, policy string) {
	s, hs := newSched(t, policy, 1, 2, 3, 1, 2)
	load(hs[1], 3*time.Millisecond, 3)
	for round := range 20 {
		seq := []uint64{uint64(round)*0x9e3779b97f4a7c15 + 7, uint64(round) * 31, 12345}
		p := s.Picker()
		p.rnd = &scripted{seq: seq}
		cursor := p.cursor.Load()
		h1, err := p.Pick(req, "10.0.0.1", nil)
		require.NoError(t, err)
		h1.Release(0, backendactor.Canceled) // no sample: an aging estimate would count it
		p.rnd = &scripted{seq: seq}
		p.cursor.Store(cursor)
		var ex Explanation
		h2, err := p.PickExplain(req, "10.0.0.1", nil, &ex)
		require.NoError(t, err)
		h2.Release(0, backendactor.Canceled)
		require.Equal(t, h1, h2, "round %d", round)
		require.True(t, byURL(&ex)[h2.URL()].Chosen)
	}
}

func TestPickExplainTriedNoBackendCanarySticky(t *testing.T) {
	s, hs := newSched(t, RR, 1, 1, 1)
	ctx := context.Background()
	var ex Explanation
	h, err := s.Picker().PickExplain(req, "", hs[:2], &ex)
	require.NoError(t, err)
	h.Release(time.Millisecond, backendactor.Success)
	require.Equal(t, hs[2], h)
	c := byURL(&ex)
	require.Equal(t, ReasonTried, c[url(0)].Reason)
	require.Equal(t, ReasonTried, c[url(1)].Reason)
	require.Zero(t, c[url(2)].Cost, "rr has no cost")

	for _, b := range hs {
		require.NoError(t, b.Drain(ctx, "admin drain"))
	}
	_, err = s.Picker().PickExplain(req, "", nil, &ex)
	require.ErrorIs(t, err, ErrNoBackend)
	require.Empty(t, ex.By)
	for _, cand := range ex.Candidates {
		require.Equal(t, ReasonDraining, cand.Reason, "why there was no backend")
	}
	for _, b := range hs {
		require.NoError(t, b.Undrain(ctx, "admin undrain"))
	}

	require.NoError(t, s.SetCanary(ctx, url(1), 100))
	h, err = s.Picker().PickExplain(req, "", nil, &ex)
	require.NoError(t, err)
	h.Release(time.Millisecond, backendactor.Success)
	require.Equal(t, ByCanary, ex.By)
	require.True(t, byURL(&ex)[url(1)].Canary)
	require.NoError(t, s.SetCanary(ctx, "", 0))

	require.NoError(t, s.SetPolicy(ctx, LC, true, "ip"))
	h, err = s.Picker().PickExplain(req, "10.1.2.3", nil, &ex)
	require.NoError(t, err)
	h.Release(time.Millisecond, backendactor.Success)
	require.Equal(t, BySticky, ex.By)
	c = byURL(&ex)
	chosen := c[h.URL()]
	require.InDelta(t, float64(chosen.Inflight+1)/(float64(chosen.Weight)*chosen.WarmFactor), chosen.Cost, 1e-9,
		"lc: (in flight + 1) / effective weight (warming after the undrain)")
	require.Equal(t, backendactor.StateWarming, chosen.State)
}
