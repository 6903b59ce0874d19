package scheduler

import (
	"container/heap"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/lbd/lbd/actor"
	"github.com/lbd/lbd/backendactor"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func url(i int) string { return fmt.Sprintf("http://127.0.0.1:%d", 9000+i) }

// newSched starts a scheduler with backends of the given weights and a seeded generator.
func newSched(t *testing.T, policy string, weights ...int) (*Scheduler, []*backendactor.Handle) {
	t.Helper()
	s, err := New(Config{
		Policy: policy, Registry: actor.NewRegistry(), Logger: quiet,
		Rand: rand.New(rand.NewPCG(1, 2)),
		Backend: backendactor.Config{
			Breaker: backendactor.BreakerConfig{FailureThreshold: 5, OpenFor: time.Second, HalfOpenProbes: 1},
			Warmup:  30 * time.Second, WarmupMinPercent: 10,
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Stop(context.Background())) })
	var hs []*backendactor.Handle
	for i, w := range weights {
		h, err := s.Add(context.Background(), Spec{URL: url(i), Weight: w, Initial: true})
		require.NoError(t, err)
		hs = append(hs, h)
	}
	return s, hs
}

var req = httptest.NewRequest(http.MethodGet, "/", nil)

// pickSeq picks n times, releasing each at once, and returns the backend indices.
func pickSeq(t *testing.T, s *Scheduler, hs []*backendactor.Handle, n int) []int {
	t.Helper()
	var out []int
	for range n {
		h, err := s.Picker().Pick(req, "10.0.0.1", nil)
		require.NoError(t, err)
		h.Release(time.Millisecond, backendactor.Success)
		for i, x := range hs {
			if x == h {
				out = append(out, i)
			}
		}
	}
	return out
}

func TestRoundRobinExactRotation(t *testing.T) {
	s, hs := newSched(t, RR, 1, 1, 1)
	require.Equal(t, []int{0, 1, 2, 0, 1, 2, 0, 1, 2}, pickSeq(t, s, hs, 9))

	require.NoError(t, hs[1].Drain(context.Background(), "test drain"))
	require.Equal(t, []int{0, 2, 0, 2}, pickSeq(t, s, hs, 4), "a drained backend is skipped")
}

func TestSmoothWeightedExactSequence(t *testing.T) {
	s, hs := newSched(t, WRR, 5, 1, 1)
	// nginx's smooth weighted round robin for a=5, b=1, c=1.
	want := []int{0, 0, 1, 0, 2, 0, 0}
	require.Equal(t, append(want, want...), pickSeq(t, s, hs, 14))
	require.Equal(t, []uint16{0, 0, 1, 0, 2, 0, 0}, smoothCycle([]int{5, 1, 1}))
}

func TestLeastConnectionsPicksLeastInflight(t *testing.T) {
	s, hs := newSched(t, LC, 1, 1, 1)
	for range 3 {
		require.True(t, hs[0].Acquire())
	}
	require.True(t, hs[2].Acquire())
	for range 20 {
		h, err := s.Picker().Pick(req, "", nil)
		require.NoError(t, err)
		require.Same(t, hs[1], h, "backend 1 has nothing in flight")
		h.Release(time.Millisecond, backendactor.Success)
	}
	require.True(t, hs[1].Acquire())
	require.True(t, hs[1].Acquire())
	h, err := s.Picker().Pick(req, "", nil)
	require.NoError(t, err)
	require.Same(t, hs[2], h, "now backend 2 has the fewest (1)")
}

// completion is one request in flight in the simulation below.
type completion struct {
	at time.Time
	h  *backendactor.Handle
}
type queue []completion

func (q queue) Len() int           { return len(q) }
func (q queue) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q queue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)        { *q = append(*q, x.(completion)) }
func (q *queue) Pop() any          { o := *q; x := o[len(o)-1]; *q = o[:len(o)-1]; return x }
func (q queue) peek() completion   { return q[0] }
func (q *queue) add(c completion)  { heap.Push(q, c) }
func (q *queue) next() completion  { return heap.Pop(q).(completion) }

var _ heap.Interface = (*queue)(nil)

// TestP2CEWMAAvoidsTheSlowBackend runs 32 closed-loop clients against two
// 1 ms backends and one 10 ms backend on the bubble's fake clock, so the
// backend actors fold real samples on their real tick.
func TestP2CEWMAAvoidsTheSlowBackend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, hs := newSched(t, P2CEWMA, 1, 1, 1)
		service := map[*backendactor.Handle]time.Duration{hs[0]: time.Millisecond, hs[1]: time.Millisecond, hs[2]: 10 * time.Millisecond}
		counts := map[*backendactor.Handle]int{}
		q := &queue{}
		start := time.Now()
		issue := func() {
			h, err := s.Picker().Pick(req, "", nil)
			require.NoError(t, err)
			counts[h]++
			q.add(completion{time.Now().Add(service[h]), h})
		}
		for range 32 {
			issue()
		}
		for range 10_000 - 32 {
			c := q.next()
			<-time.After(c.at.Sub(time.Now())) // fake time: jumps, and lets the actors tick
			c.h.Release(service[c.h], backendactor.Success)
			issue()
		}
		for q.Len() > 0 {
			c := q.next()
			c.h.Release(service[c.h], backendactor.Success)
		}
		fast := counts[hs[0]] + counts[hs[1]]
		t.Logf("fast %d, slow %d, in %s of fake time", fast, counts[hs[2]], time.Since(start))
		require.Greater(t, float64(fast)/10_000, 0.80)
		require.Greater(t, counts[hs[2]], 0, "the slow backend still gets probing traffic")
	})
}

func TestStickyConsistentHashingMovesFewKeys(t *testing.T) {
	const keys = 10_000
	for _, n := range []int{3, 5, 10} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ws := make([]int, n-1)
			for i := range ws {
				ws[i] = 1
			}
			s, _ := newSched(t, RR, ws...)
			require.NoError(t, s.SetPolicy(context.Background(), RR, true, "header:X-User"))
			where := func() map[string]string {
				m := map[string]string{}
				for k := range keys {
					r := httptest.NewRequest(http.MethodGet, "/", nil)
					r.Header.Set("X-User", fmt.Sprint("user-", k))
					h, err := s.Picker().Pick(r, "", nil)
					require.NoError(t, err)
					h.Release(0, backendactor.Success)
					m[r.Header.Get("X-User")] = h.URL()
				}
				return m
			}
			before := where()
			require.Equal(t, before, where(), "the same key goes to the same backend")
			_, err := s.Add(context.Background(), Spec{URL: url(n - 1), Weight: 1, Initial: true})
			require.NoError(t, err)
			after := where()
			moved := 0
			for k, u := range before {
				if after[k] != u {
					moved++
					require.Equal(t, url(n-1), after[k], "keys only move to the new backend")
				}
			}
			t.Logf("n=%d moved %d of %d", n, moved, keys)
			require.LessOrEqual(t, float64(moved)/keys, 1/float64(n)+0.05)
		})
	}
}

func TestStickyIPAndCookie(t *testing.T) {
	s, hs := newSched(t, P2CEWMA, 1, 1, 1)
	require.NoError(t, s.SetPolicy(context.Background(), P2CEWMA, true, "ip"))
	first, err := s.Picker().Pick(req, "192.0.2.7", nil)
	require.NoError(t, err)
	first.Release(0, backendactor.Success)
	for range 50 {
		h, err := s.Picker().Pick(req, "192.0.2.7", nil)
		require.NoError(t, err)
		require.Same(t, first, h)
		h.Release(0, backendactor.Success)
	}
	require.NoError(t, first.Drain(context.Background(), "test drain"))
	h, err := s.Picker().Pick(req, "192.0.2.7", nil)
	require.NoError(t, err)
	require.NotSame(t, first, h, "an ineligible sticky backend gives way")
	h.Release(0, backendactor.Success)

	require.NoError(t, s.SetPolicy(context.Background(), RR, true, "cookie:sid"))
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.AddCookie(&http.Cookie{Name: "sid", Value: "abc"})
	a, err := s.Picker().Pick(r, "", nil)
	require.NoError(t, err)
	a.Release(0, backendactor.Success)
	b, err := s.Picker().Pick(r, "", nil)
	require.NoError(t, err)
	b.Release(0, backendactor.Success)
	require.Same(t, a, b)
	_ = hs
}

func TestCanaryPercent(t *testing.T) {
	for _, pct := range []float64{1, 10, 37.5} {
		s, hs := newSched(t, RR, 1, 1, 1)
		require.NoError(t, s.SetCanary(context.Background(), url(2), pct))
		got := 0
		for _, i := range pickSeq(t, s, hs, 10_000) {
			if i == 2 {
				got++
			}
		}
		require.InDelta(t, pct, float64(got)/100, 2, "canary share for %v%%", pct)
	}
}

func TestPickExcludesTriedAndReportsNoBackend(t *testing.T) {
	for _, p := range []string{RR, WRR, LC, P2CEWMA} {
		t.Run(p, func(t *testing.T) {
			s, hs := newSched(t, p, 1, 2, 1)
			for range 20 {
				h, err := s.Picker().Pick(req, "", []*backendactor.Handle{hs[0], hs[1]})
				require.NoError(t, err)
				require.Same(t, hs[2], h)
				h.Release(0, backendactor.Success)
			}
			_, err := s.Picker().Pick(req, "", hs)
			require.ErrorIs(t, err, ErrNoBackend)
			for _, h := range hs {
				require.NoError(t, h.SetCap(context.Background(), 1))
				require.True(t, h.Acquire())
			}
			_, err = s.Picker().Pick(req, "", nil)
			require.ErrorIs(t, err, ErrNoBackend, "every backend is at its cap")
		})
	}
}

func TestAdminErrors(t *testing.T) {
	s, _ := newSched(t, RR, 1)
	ctx := context.Background()
	_, err := s.Add(ctx, Spec{URL: url(0)})
	require.ErrorIs(t, err, ErrExists)
	require.ErrorIs(t, s.Remove(ctx, url(7), time.Second, "test remove"), ErrNotFound)
	require.ErrorIs(t, s.SetPolicy(ctx, "random", false, ""), ErrInvalid)
	require.ErrorIs(t, s.SetPolicy(ctx, RR, true, "query:x"), ErrInvalid)
	require.ErrorIs(t, s.SetCanary(ctx, url(7), 5), ErrNotFound)
	require.ErrorIs(t, s.SetCanary(ctx, url(0), 101), ErrInvalid)
	st, err := s.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, RR, st.Policy, "a bad call changed nothing")
	require.Equal(t, []string{url(0)}, st.Backends)
}

func TestRemoveRetiresTheActor(t *testing.T) {
	s, hs := newSched(t, RR, 1, 1)
	require.NoError(t, s.Remove(context.Background(), url(0), time.Minute, "test remove"))
	<-hs[0].Done()
	require.Nil(t, s.Lookup(url(0)))
	require.Len(t, s.Picker().Backends(), 1)
}

// TestP2CDrawIsUniform checks the second choice: with equal costs every
// backend must be chosen equally often (a biased second draw shows here).
// It runs in a bubble whose clock stands still, so no backend actor ticks
// and folds a sample: every EWMA stays zero and every cost equal.
func TestP2CDrawIsUniform(t *testing.T) {
	synctest.Test(t, testP2CDrawIsUniform)
}

func testP2CDrawIsUniform(t *testing.T) {
	for _, n := range []int{2, 3, 7} {
		ws := make([]int, n)
		for i := range ws {
			ws[i] = 1
		}
		s, hs := newSched(t, P2CEWMA, ws...)
		counts := make([]int, n)
		const picks = 70_000
		for _, i := range pickSeq(t, s, hs, picks) {
			counts[i]++
		}
		for i, c := range counts {
			require.InDelta(t, float64(picks)/float64(n), float64(c), float64(picks)/float64(n)*0.05, "n=%d backend %d: %v", n, i, counts)
		}
	}
}
