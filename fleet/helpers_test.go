package fleet

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"

	"github.com/lbd/lbd/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

const prefix = "/lbd/"

// recSink is a Sink that keeps the state it was given and every call, and
// wakes waiters on each call.
type recSink struct {
	mu      sync.Mutex
	state   map[string]KV
	rev     int64
	resets  int
	applies []changed
	wake    chan struct{}
	panicAt func(rev int64) bool // nil: never panics
}

func newSink() *recSink { return &recSink{state: map[string]KV{}, wake: make(chan struct{})} }

func (s *recSink) Reset(kvs []KV, rev int64) {
	s.mu.Lock()
	defer s.notify()
	s.state = map[string]KV{}
	for _, kv := range kvs {
		s.state[kv.Key] = kv
	}
	s.rev = rev
	s.resets++
}

func (s *recSink) Apply(rev int64, events []Event) {
	s.mu.Lock()
	defer s.notify()
	if s.panicAt != nil && s.panicAt(rev) {
		s.panicAt = nil
		s.state["half-applied"] = KV{Key: "half-applied"}
		panic("sink panics once")
	}
	for _, ev := range events {
		if ev.Kind == EventDelete {
			delete(s.state, ev.KV.Key)
		} else {
			s.state[ev.KV.Key] = ev.KV
		}
	}
	s.rev = rev
	s.applies = append(s.applies, changed{rev: rev, events: events})
}

// notify unlocks and wakes every waiter.
func (s *recSink) notify() {
	close(s.wake)
	s.wake = make(chan struct{})
	s.mu.Unlock()
}

// values is the state as key -> value.
func (s *recSink) values() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.state))
	for k, kv := range s.state {
		out[k] = string(kv.Value)
	}
	return out
}

func (s *recSink) get(key string) (KV, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kv, ok := s.state[key]
	return kv, ok
}

// waitFor waits until cond (called under the lock) holds, for at most 15s.
func (s *recSink) waitFor(t *testing.T, what string, cond func(s *recSink) bool) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		s.mu.Lock()
		ok, wake := cond(s), s.wake
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-wake:
		case <-deadline:
			t.Fatalf("timed out waiting for %s; sink has %v", what, s.values())
		}
	}
}

// waitValues waits until the sink holds exactly want.
func (s *recSink) waitValues(t *testing.T, want map[string]string) {
	t.Helper()
	s.waitFor(t, "the state to converge", func(s *recSink) bool {
		if len(s.state) != len(want) {
			return false
		}
		for k, v := range want {
			if kv, ok := s.state[k]; !ok || string(kv.Value) != v {
				return false
			}
		}
		return true
	})
}

type linkOpt func(*Options)

// startLink starts a link on endpoint with a fresh sink; cleanup stops it.
func startLink(t *testing.T, endpoint, name string, opts ...linkOpt) (*Link, *recSink) {
	t.Helper()
	sink := newSink()
	o := Options{
		Etcd: config.Etcd{Endpoints: []string{endpoint}, Prefix: prefix, DialTimeout: config.Duration(time.Second)},
		Name: name, AdminAddress: "127.0.0.1:3031", Version: "test", Sink: sink,
		LeaseTTL: 2 * time.Second, RequestTimeout: 2 * time.Second, Heartbeat: 300 * time.Millisecond,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		Registerer: prometheus.NewRegistry(), Logger: quiet,
	}
	for _, f := range opts {
		f(&o)
	}
	l, err := New(o)
	require.NoError(t, err)
	t.Cleanup(func() { stopLink(t, l) })
	waitSynced(t, l)
	waitStatus(t, l, "connected", func(s *Status) bool { return s.Self.Connected })
	return l, sink
}

func stopLink(t *testing.T, l *Link) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, l.Stop(ctx))
}

func waitSynced(t *testing.T, l *Link) {
	t.Helper()
	select {
	case <-l.Synced():
	case <-time.After(15 * time.Second):
		t.Fatalf("link never listed the state: %+v", l.Status().Self)
	}
}

// waitStatus waits until cond holds for the link's published status. The
// status is an atomic snapshot with no change notification, so this polls
// it (every 10ms, for at most 15s).
func waitStatus(t *testing.T, l *Link, what string, cond func(*Status) bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond(l.Status()) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %+v", what, l.Status())
		}
		<-time.After(10 * time.Millisecond)
	}
}

// etcdState reads the prefix (registry left out) straight from etcd.
func etcdState(t *testing.T, c *clientv3.Client) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, prefix, clientv3.WithPrefix())
	require.NoError(t, err)
	out := map[string]string{}
	for _, kv := range resp.Kvs {
		k := string(kv.Key[len(prefix):])
		if len(k) >= len(ReplicasPrefix) && k[:len(ReplicasPrefix)] == ReplicasPrefix {
			continue
		}
		out[k] = string(kv.Value)
	}
	return out
}

func put(t *testing.T, c *clientv3.Client, key, value string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Put(ctx, prefix+key, value)
	require.NoError(t, err)
	return resp.Header.Revision
}

func replicaNames(rs []Replica) []string {
	names := make([]string, 0, len(rs))
	for _, r := range rs {
		names = append(names, r.Name)
	}
	return names
}
