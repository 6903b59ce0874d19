package fleet

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/internal/etcdtest"
)

// timingSink notes when each revision reached it.
type timingSink struct {
	mu   sync.Mutex
	at   map[int64]time.Time
	wake chan struct{}
}

func (s *timingSink) Reset([]KV, int64) {}

func (s *timingSink) Apply(rev int64, _ []Event) {
	now := time.Now()
	s.mu.Lock()
	s.at[rev] = now
	close(s.wake)
	s.wake = make(chan struct{})
	s.mu.Unlock()
}

// when waits until rev has reached the sink and says when it did.
func (s *timingSink) when(b *testing.B, rev int64) time.Time {
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		at, ok := s.at[rev]
		wake := s.wake
		s.mu.Unlock()
		if ok {
			return at
		}
		select {
		case <-wake:
		case <-deadline:
			b.Fatalf("revision %d never arrived", rev)
		}
	}
}

// BenchmarkConvergence measures how long a change committed on replica A
// takes to reach the Sinks of replicas B and C (the Apply call), one
// commit at a time against a local etcd. It reports the p50, p99 and
// maximum over every (commit, replica) pair; run it with a fixed count:
//
//	go test -run '^$' -bench Convergence -benchtime 100x ./fleet/
func BenchmarkConvergence(b *testing.B) {
	srv := etcdtest.Start(b, etcdtest.Options{})
	var sinks []*timingSink
	var links []*Link
	for _, name := range []string{"a", "b", "c"} {
		s := &timingSink{at: map[int64]time.Time{}, wake: make(chan struct{})}
		l, err := New(Options{
			Etcd: config.Etcd{Endpoints: []string{srv.Endpoint()}, Prefix: prefix, DialTimeout: config.Duration(time.Second)},
			Name: name, Sink: s, Logger: quiet,
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = l.Stop(context.Background()) })
		sinks, links = append(sinks, s), append(links, l)
	}
	for _, l := range links {
		for !l.Status().Self.Connected {
			<-time.After(10 * time.Millisecond) // polls the published status, bounded by b's timeout
		}
	}
	ctx := context.Background()
	var lat, commit []time.Duration
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		rev, err := links[0].Commit(ctx, Put(fmt.Sprintf("state/pools/web/backends/b%d", i%20), fmt.Appendf(nil, `{"weight":%d}`, i), IfAny))
		if err != nil {
			b.Fatal(err)
		}
		commit = append(commit, time.Since(start))
		for _, s := range sinks[1:] {
			lat = append(lat, s.when(b, rev).Sub(start))
		}
	}
	report(b, "converge", lat)
	report(b, "commit", commit)
}

func report(b *testing.B, what string, d []time.Duration) {
	slices.Sort(d)
	q := func(p float64) float64 { return float64(d[int(p*float64(len(d)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), what+"-p50-ms")
	b.ReportMetric(q(0.99), what+"-p99-ms")
	b.ReportMetric(q(1), what+"-max-ms")
}
