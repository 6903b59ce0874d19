package scheduler

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/actor"
	"github.com/lbd/lbd/backendactor"
)

// benchSched starts a scheduler over n backends using the runtime's generator.
func benchSched(b *testing.B, policy string, n int) *Scheduler {
	b.Helper()
	s, err := New(Config{Policy: policy, Registry: actor.NewRegistry(), Logger: quiet,
		Backend: backendactor.Config{Breaker: backendactor.BreakerConfig{FailureThreshold: 5, OpenFor: time.Second}}})
	require.NoError(b, err)
	b.Cleanup(func() { _ = s.Stop(context.Background()) })
	for i := range n {
		_, err := s.Add(context.Background(), Spec{URL: url(i), Weight: 1 + i%3, Initial: true})
		require.NoError(b, err)
	}
	return s
}

// BenchmarkPick is the request path's whole scheduling cost: pick by policy,
// acquire the backend's slot, release it with a sample.
//
// snapshot: the design lbd uses, reading the published picker and snapshots.
// ask: the alternative DESIGN.md asks us to measure, a round trip to an
// actor that owns the picker for every request.
func BenchmarkPick(b *testing.B) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	for _, policy := range []string{RR, WRR, LC, P2CEWMA} {
		b.Run("snapshot/"+policy, func(b *testing.B) { pickParallel(b, benchSched(b, policy, 3), r) })
	}
	b.Run("snapshot/p2c-ewma/sticky", func(b *testing.B) {
		s := benchSched(b, P2CEWMA, 3)
		require.NoError(b, s.SetPolicy(context.Background(), P2CEWMA, true, "ip"))
		pickParallel(b, s, r)
	})
	b.Run("snapshot/p2c-ewma/50-backends", func(b *testing.B) { pickParallel(b, benchSched(b, P2CEWMA, 50), r) })
	// explain: the pick a tap listener asks for (PickExplain), for what
	// listening costs; Pick itself must not change.
	b.Run("explain/p2c-ewma", func(b *testing.B) {
		s := benchSched(b, P2CEWMA, 3)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var ex Explanation
			for pb.Next() {
				h, err := s.Picker().PickExplain(r, "192.0.2.1", nil, &ex)
				if err != nil {
					b.Fatal(err)
				}
				h.Release(time.Millisecond, backendactor.Success)
			}
		})
	})
	// One goroutine, no contention on the shared counters: the figure to
	// count instructions on (valgrind --tool=cachegrind), which a busy
	// machine does not disturb the way it disturbs ns/op.
	b.Run("sequential/p2c-ewma", func(b *testing.B) {
		s := benchSched(b, P2CEWMA, 3)
		b.ReportAllocs()
		for b.Loop() {
			h, err := s.Picker().Pick(r, "192.0.2.1", nil)
			if err != nil {
				b.Fatal(err)
			}
			h.Release(time.Millisecond, backendactor.Success)
		}
	})
	b.Run("ask/p2c-ewma", func(b *testing.B) {
		s := benchSched(b, P2CEWMA, 3)
		owner := actor.Spawn(nil, &pickOwner{s: s, r: r}, actor.Options{Name: "bench-picker", Mailbox: 1024, Logger: quiet})
		b.Cleanup(owner.Stop)
		ctx := context.Background()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				h, err := actor.Ask(ctx, owner, func(reply chan<- *backendactor.Handle) any { return pickReq{reply} })
				if err != nil || h == nil {
					b.Fatal(fmt.Sprint("ask: ", err))
				}
				h.Release(time.Millisecond, backendactor.Success)
			}
		})
	})
}

// pickParallel is the request path's scheduling: pick from the published
// picker (which acquires the slot), then release it with a sample.
func pickParallel(b *testing.B, s *Scheduler, r *http.Request) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h, err := s.Picker().Pick(r, "192.0.2.1", nil)
			if err != nil {
				b.Fatal(err)
			}
			h.Release(time.Millisecond, backendactor.Success)
		}
	})
}

// pickOwner answers one pick per message, as a per-request-ask design would.
type pickOwner struct {
	s *Scheduler
	r *http.Request
}
type pickReq struct{ reply chan<- *backendactor.Handle }

func (p *pickOwner) Receive(msg any) {
	m := msg.(pickReq)
	h, _ := p.s.Picker().Pick(p.r, "", nil)
	m.reply <- h
}
