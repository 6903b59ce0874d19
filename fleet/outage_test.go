package fleet

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/internal/etcdtest"
)

// TestEtcdOutage: with etcd down (killed, or stopped cleanly) Commit
// refuses at once with ErrUnavailable, the sinks keep their state and the
// connected gauge is 0; with etcd back on the same data dir, both links
// list again and changes propagate again.
func TestEtcdOutage(t *testing.T) {
	for _, stop := range []string{"SIGKILL", "SIGTERM"} {
		t.Run(stop, func(t *testing.T) {
			srv := etcdtest.Start(t, etcdtest.Options{})
			a, sinkA := startLink(t, srv.Endpoint(), "a")
			b, sinkB := startLink(t, srv.Endpoint(), "b")
			ctx := context.Background()
			rev, err := a.Commit(ctx, Put("state/pools/web/backends/x", []byte(`{"drain":true}`), IfAbsent))
			require.NoError(t, err)
			require.NoError(t, b.WaitApplied(ctx, rev))
			require.NoError(t, a.WaitApplied(ctx, rev))
			before := sinkA.values()
			require.Equal(t, 1.0, testutil.ToFloat64(a.metrics.connected))

			if stop == "SIGKILL" {
				srv.Kill()
			} else {
				srv.Stop()
			}
			for _, l := range []*Link{a, b} {
				waitStatus(t, l, "disconnected", func(s *Status) bool { return !s.Self.Connected })
			}
			start := time.Now()
			_, err = b.Commit(ctx, Put("state/pools/web/policy", []byte(`"rr"`), IfAny))
			took := time.Since(start)
			t.Logf("commit refused in %s: %v", took, err)
			require.ErrorIs(t, err, ErrUnavailable)
			require.True(t, strings.HasPrefix(err.Error(), "fleet: etcd unreachable: "), err.Error())
			require.Less(t, took, 100*time.Millisecond, "refused without waiting on the network")
			require.Equal(t, 0.0, testutil.ToFloat64(b.metrics.connected))
			require.Equal(t, 1.0, testutil.ToFloat64(b.metrics.commits.WithLabelValues("unavailable")))
			require.Equal(t, before, sinkA.values(), "the sink keeps the last state")
			require.Equal(t, before, sinkB.values())
			require.NotEmpty(t, a.Status().Self.LastError)
			require.Equal(t, rev, a.Status().Self.Revision)

			srv.Restart()
			for _, l := range []*Link{a, b} {
				waitStatus(t, l, "reconnected", func(s *Status) bool { return s.Self.Connected })
			}
			require.Equal(t, 1.0, testutil.ToFloat64(a.metrics.connected))
			rev, err = b.Commit(ctx, Put("state/pools/web/policy", []byte(`"rr"`), IfAbsent))
			require.NoError(t, err, "changes propagate again")
			require.NoError(t, a.WaitApplied(ctx, rev))
			require.Equal(t, `"rr"`, sinkA.values()["state/pools/web/policy"])
			require.Equal(t, before["state/pools/web/backends/x"], sinkA.values()["state/pools/web/backends/x"],
				"what was committed before the outage is still there")
			require.GreaterOrEqual(t, a.Status().Self.Resyncs, uint64(2), "a reconnection lists again")
		})
	}
}

// TestCompactionWhileDisconnected: a link cut off by a partition misses
// puts and deletes, and the history of them is compacted away before it
// comes back; it lists again and converges to etcd's state.
func TestCompactionWhileDisconnected(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	c := srv.Client()
	proxy := etcdtest.NewProxy(t, srv.Addr())
	a, sinkA := startLink(t, proxy.Endpoint(), "a")
	b, sinkB := startLink(t, srv.Endpoint(), "b")
	ctx := context.Background()
	for i := range 5 {
		_, err := b.Commit(ctx, Put(fmt.Sprintf("state/k%d", i), []byte("v1"), IfAbsent))
		require.NoError(t, err)
	}
	require.NoError(t, a.WaitApplied(ctx, b.Status().Self.Revision))
	resyncs := a.Status().Self.Resyncs

	proxy.Partition()
	waitStatus(t, a, "cut off", func(s *Status) bool { return !s.Self.Connected })
	missed := a.Status().Self.Revision
	put(t, c, "state/k1", "v2")
	_, err := c.Delete(ctx, prefix+"state/k2")
	require.NoError(t, err)
	last := put(t, c, "state/new", "v1")
	_, err = c.Compact(ctx, last)
	require.NoError(t, err)
	require.Greater(t, last, missed)

	proxy.Heal()
	want := etcdState(t, c)
	sinkA.waitValues(t, want)
	require.NoError(t, a.WaitApplied(ctx, last))
	require.Greater(t, a.Status().Self.Resyncs, resyncs, "it listed again")
	sinkB.waitValues(t, want)
}

// TestCompactedBetweenListAndWatch: writes and a compaction between the
// list and the watch that follows it make the watch's start revision
// history; etcd answers "compacted", and the link lists again instead of
// silently starting later (etcd#8668).
func TestCompactedBetweenListAndWatch(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	c := srv.Client()
	put(t, c, "state/a", "1")
	var once sync.Once
	l, sink := startLink(t, srv.Endpoint(), "a", func(o *Options) {
		o.afterList = func() {
			once.Do(func() {
				put(t, c, "state/a", "2")
				put(t, c, "state/b", "1")
				rev := put(t, c, "state/c", "1")
				_, err := c.Compact(context.Background(), rev)
				require.NoError(t, err)
			})
		}
	})
	sink.waitValues(t, map[string]string{"state/a": "2", "state/b": "1", "state/c": "1"})
	require.Equal(t, uint64(2), l.Status().Self.Resyncs, "the start list, then one more after the compacted answer")
	require.Equal(t, 2, sink.resets)
}

// TestSinkPanicResyncs: a Sink that panics has unknown state; the actor
// survives, and the link lists again so the Sink gets a fresh Reset.
func TestSinkPanicResyncs(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	c := srv.Client()
	l, sink := startLink(t, srv.Endpoint(), "a")
	sink.mu.Lock()
	sink.panicAt = func(int64) bool { return true }
	sink.mu.Unlock()
	put(t, c, "state/x", "1")
	sink.waitValues(t, map[string]string{"state/x": "1"})
	require.Equal(t, uint64(1), l.ref.Stats().Restarts)
	require.Equal(t, 2, sink.resets)
	put(t, c, "state/y", "1")
	sink.waitValues(t, map[string]string{"state/x": "1", "state/y": "1"})
}
