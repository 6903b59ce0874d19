package scheduler

import (
	"context"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/actor"
	"github.com/lbd/lbd/backendactor"
)

// The backend actors' EWMA settings in these tests: the defaults.
const (
	testTau   = time.Second            // backendactor.Config.EWMADecay default
	testGrace = 200 * time.Millisecond // two 100 ms ticks
	testTick  = 100 * time.Millisecond
)

// openLoop drives picks at a fixed rate on the bubble's fake clock: every
// period a request arrives, is picked and completes after service(h, at),
// so the backend actors fold real samples on their real tick. It returns,
// per window of the given length, how many picks each backend got.
func openLoop(t *testing.T, s *Scheduler, hs []*backendactor.Handle, period, total, window time.Duration,
	service func(h *backendactor.Handle, at time.Duration) time.Duration) [][]int {
	t.Helper()
	start := time.Now()
	q := &queue{}
	lat := map[*backendactor.Handle][]time.Duration{}
	var out [][]int
	// Arrivals sit a third of a millisecond off the actors' 100 ms tick
	// grid, so that no arrival and no tick share an instant.
	next := start.Add(period / 3)
	end := start.Add(total)
	for next.Before(end) {
		if q.Len() > 0 && q.peek().at.Before(next) {
			c := q.next()
			<-time.After(time.Until(c.at))
			l := lat[c.h]
			c.h.Release(l[0], backendactor.Success)
			lat[c.h] = l[1:]
			continue
		}
		<-time.After(time.Until(next))
		at := next.Sub(start)
		h, err := s.Picker().Pick(req, "", nil)
		require.NoError(t, err)
		w := int(at / window)
		for len(out) <= w {
			out = append(out, make([]int, len(hs)))
		}
		for i, x := range hs {
			if x == h {
				out[w][i]++
			}
		}
		d := service(h, at)
		lat[h] = append(lat[h], d)
		q.add(completion{time.Now().Add(d), h})
		next = next.Add(period)
	}
	for q.Len() > 0 {
		c := q.next()
		<-time.After(time.Until(c.at))
		c.h.Release(lat[c.h][0], backendactor.Success)
		lat[c.h] = lat[c.h][1:]
	}
	return out
}

// TestP2CRecoveredBackendRegainsItsShare is issue 10's first symptom on
// the fake clock: three 1 ms backends at 1,000 picks/s, the third 20 ms
// slower for 6 s. While it is slow it gets almost nothing; once it is fast
// again it must be back above a 20% share within the bound the decay sets:
// its last slow sample (at the latest when the spell ends) ages for the
// grace, then falls as exp(-t/tau) from 21 ms to the 1 ms the others cost,
// which takes tau x ln(21); then one more tick folds its fast samples.
func TestP2CRecoveredBackendRegainsItsShare(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, hs := newSched(t, P2CEWMA, 1, 1, 1)
		const (
			spellFrom = time.Second
			spellTo   = 7 * time.Second
			window    = 250 * time.Millisecond
		)
		fast, slow := time.Millisecond, 21*time.Millisecond
		bound := testGrace + time.Duration(float64(testTau)*math.Log(float64(slow)/float64(fast))) + 2*testTick
		shares := openLoop(t, s, hs, time.Millisecond, spellTo+bound+2*time.Second, window,
			func(h *backendactor.Handle, at time.Duration) time.Duration {
				if h == hs[2] && at >= spellFrom && at < spellTo {
					return slow
				}
				return fast
			})
		share := func(w []int) float64 { return float64(w[2]) / float64(w[0]+w[1]+w[2]) }

		// While slow (past the first second of it, when its first slow
		// samples were folded): it is probed, not used.
		probes, all := 0, 0
		for _, w := range shares[int((spellFrom+time.Second)/window):int(spellTo/window)] {
			probes += w[2]
			all += w[0] + w[1] + w[2]
		}
		t.Logf("while slow: %d of %d picks (%.2f%%)", probes, all, 100*float64(probes)/float64(all))
		require.Positive(t, probes, "a slow backend is still probed now and then")
		require.Less(t, float64(probes)/float64(all), 0.01, "one that stays slow gets almost nothing")

		// After: the first window above a 20% share.
		back := -1
		for i := int(spellTo / window); i < len(shares); i++ {
			if share(shares[i]) > 0.2 {
				back = i
				break
			}
		}
		require.NotEqual(t, -1, back, "never regained a 20%% share: %v", shares[int(spellTo/window):])
		took := time.Duration(back+1)*window - spellTo // the end of the first window above 20%
		t.Logf("back above 20%% within %v of the spell's end (bound %v + one %v window)", took, bound, window)
		require.LessOrEqual(t, took, bound+window)
		for _, w := range shares[back+1:] {
			require.Greater(t, share(w), 0.2, "and it keeps its share: %v", shares[back:])
		}
	})
}

// TestP2CWeightsCount: under p2c-ewma the cost is divided by the effective
// weight, so with equal latencies the requests in flight split as the
// weights do. Forty requests held open on weights 3 and 1 settle at 30:10
// (+-1 for the tie), and a closed loop over weights 1, 2, 3 serves 1/6,
// 2/6 and 3/6 of the requests.
func TestP2CWeightsCount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, hs := newSched(t, P2CEWMA, 3, 1)
		n := map[*backendactor.Handle]int{}
		for range 40 {
			h, err := s.Picker().Pick(req, "", nil)
			require.NoError(t, err)
			n[h]++
		}
		require.InDelta(t, 30, n[hs[0]], 1, "weight 3 holds three quarters: %v", n)
		for h, k := range n {
			for range k {
				h.Release(time.Millisecond, backendactor.Success)
			}
		}
	})
	synctest.Test(t, func(t *testing.T) {
		s, hs := newSched(t, P2CEWMA, 1, 2, 3)
		counts := map[*backendactor.Handle]int{}
		q := &queue{}
		issue := func() {
			h, err := s.Picker().Pick(req, "", nil)
			require.NoError(t, err)
			counts[h]++
			q.add(completion{time.Now().Add(2 * time.Millisecond), h})
		}
		for range 24 {
			issue()
		}
		const total = 30_000
		for range total - 24 {
			c := q.next()
			<-time.After(time.Until(c.at))
			c.h.Release(2*time.Millisecond, backendactor.Success)
			issue()
		}
		for q.Len() > 0 {
			q.next().h.Release(2*time.Millisecond, backendactor.Success)
		}
		for i, h := range hs {
			want := float64(i+1) / 6
			require.InDelta(t, want, float64(counts[h])/total, 0.03, "weight %d: %d of %d", i+1, counts[h], total)
		}
	})
}

// TestP2CPickerClockIsInjected: the decay is computed from the picker's own
// clock, so a test (or anything else) can move that clock alone. Once the
// actors have flagged both estimates as aging (a tick past the grace), the
// bubble's clock stands still: no actor folds anything while the picker's
// clock is moved forward, and only the reader-side decay changes the choice.
func TestP2CPickerClockIsInjected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ahead atomic.Int64
		s, err := New(Config{
			Policy: P2CEWMA, Registry: actor.NewRegistry(), Logger: quiet, Rand: rand.New(rand.NewPCG(3, 4)),
			Now: func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) },
		})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, s.Stop(context.Background())) })
		var hs []*backendactor.Handle
		for i := range 2 {
			h, err := s.Add(context.Background(), Spec{URL: url(i), Weight: 1, Initial: true})
			require.NoError(t, err)
			hs = append(hs, h)
		}
		// One slow window for backend 1, fast ones for backend 0, folded
		// by the actors' next tick.
		for range 10 {
			require.True(t, hs[0].Acquire())
			hs[0].Release(time.Millisecond, backendactor.Success)
		}
		require.True(t, hs[1].Acquire())
		hs[1].Release(50*time.Millisecond, backendactor.Success)
		time.Sleep(testTick)
		synctest.Wait()
		require.Equal(t, 50*time.Millisecond, hs[1].Snapshot().EWMA)
		time.Sleep(testGrace + testTick) // no samples since: both estimates age
		synctest.Wait()
		require.True(t, hs[0].Snapshot().Aging)
		require.True(t, hs[1].Snapshot().Aging)

		// Backend 0 holds a request, so load alone would favour backend 1.
		require.True(t, hs[0].Acquire())
		picks := func() (slow int) {
			for range 200 {
				h, err := s.Picker().Pick(req, "", nil)
				require.NoError(t, err)
				if h == hs[1] {
					slow++
				}
				h.Release(0, backendactor.Canceled) // no sample: nothing new to fold
			}
			return slow
		}
		require.Zero(t, picks(), "50 ms against 1 ms x 2 in flight: never the slow one")
		// Twenty tau later on the picker's clock both estimates have decayed
		// to nothing: the load decides, and the slow one is tried again.
		ahead.Store(int64(testGrace + 20*testTau))
		require.Equal(t, 200, picks(), "decayed: the idle backend is the cheaper")
		hs[0].Release(0, backendactor.Canceled)
	})
}
