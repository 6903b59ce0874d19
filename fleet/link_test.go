package fleet

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/lbd/lbd/internal/etcdtest"
)

// TestListThenWatchInOrder: the state written before the link starts comes
// as one Reset; what is written after comes as one Apply per revision, in
// order, a transaction's events together; the registry never reaches the
// sink.
func TestListThenWatchInOrder(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	c := srv.Client()
	put(t, c, "state/pools/web/policy", `"rr"`)
	put(t, c, "state/pools/web/backends/http%3A%2F%2Fa%3A80", `{"weight":1}`)
	put(t, c, "elsewhere-not-under-prefix", "x")
	_, err := c.Put(context.Background(), "/lbd2/state", "other prefix")
	require.NoError(t, err)

	l, sink := startLink(t, srv.Endpoint(), "a")
	require.Equal(t, 1, sink.resets)
	require.Equal(t, map[string]string{
		"state/pools/web/policy":                       `"rr"`,
		"state/pools/web/backends/http%3A%2F%2Fa%3A80": `{"weight":1}`,
		"elsewhere-not-under-prefix":                   "x",
	}, sink.values(), "the whole prefix, keys relative to it, nothing from /lbd2/")
	listRev := sink.rev

	var revs []int64
	for i := range 20 {
		revs = append(revs, put(t, c, fmt.Sprintf("state/k%02d", i), fmt.Sprint(i)))
	}
	ctx := context.Background()
	del, err := c.Delete(ctx, prefix+"state/k03")
	require.NoError(t, err)
	txn, err := c.Txn(ctx).Then(clientv3.OpPut(prefix+"state/t1", "1"), clientv3.OpDelete(prefix+"state/k04"),
		clientv3.OpPut(prefix+"state/t2", "2")).Commit()
	require.NoError(t, err)
	revs = append(revs, del.Header.Revision, txn.Header.Revision)

	require.NoError(t, l.WaitApplied(ctx, txn.Header.Revision))
	sink.mu.Lock()
	var got []int64
	for _, a := range sink.applies {
		got = append(got, a.rev)
	}
	last := sink.applies[len(sink.applies)-1]
	sink.mu.Unlock()
	require.Equal(t, revs, got, "one Apply per revision, in order, none skipped")
	require.Greater(t, got[0], listRev)
	require.Equal(t, []Event{
		{Kind: EventPut, KV: KV{Key: "state/t1", Value: []byte("1"), ModRevision: txn.Header.Revision, CreateRevision: txn.Header.Revision}},
		{Kind: EventDelete, KV: KV{Key: "state/k04", ModRevision: txn.Header.Revision}},
		{Kind: EventPut, KV: KV{Key: "state/t2", Value: []byte("2"), ModRevision: txn.Header.Revision, CreateRevision: txn.Header.Revision}},
	}, last.events, "a transaction is one Apply, its events in its order")
	require.Equal(t, etcdState(t, c), sink.values())
	require.Equal(t, 1, sink.resets)
	st := l.Status()
	require.True(t, st.Self.Connected)
	require.Equal(t, txn.Header.Revision, st.Self.Revision)
	require.Equal(t, uint64(20+1+3), st.Self.ChangesApplied)
	require.Equal(t, []string{"a"}, replicaNames(st.Replicas), "the registry is the link's, not the sink's")
}

// TestCommitSeenEverywhere: a commit on A is applied by A from its watch
// (WaitApplied) and by B; a link started later gets the whole state.
func TestCommitSeenEverywhere(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	a, sinkA := startLink(t, srv.Endpoint(), "a")
	b, sinkB := startLink(t, srv.Endpoint(), "b")
	ctx := context.Background()

	rev, err := a.Commit(ctx, Put("state/pools/web/policy", []byte(`"lc"`), IfAbsent),
		Put("state/pools/web/canary", []byte(`{"percent":5}`), IfAbsent))
	require.NoError(t, err)
	require.NoError(t, a.WaitApplied(ctx, rev))
	kv, ok := sinkA.get("state/pools/web/policy")
	require.True(t, ok, "the writer applied its own change from the watch")
	require.Equal(t, rev, kv.ModRevision)
	require.NoError(t, b.WaitApplied(ctx, rev))
	require.Equal(t, sinkA.values(), sinkB.values())

	rev2, err := b.Commit(ctx, Put("state/pools/web/policy", []byte(`"wrr"`), kv.ModRevision),
		Delete("state/pools/web/canary", rev))
	require.NoError(t, err)
	require.NoError(t, a.WaitApplied(ctx, rev2))
	require.Equal(t, map[string]string{"state/pools/web/policy": `"wrr"`}, sinkA.values())

	_, sinkC := startLink(t, srv.Endpoint(), "c")
	require.Equal(t, sinkA.values(), sinkC.values(), "a link started later gets the whole state in its first Reset")
	sinkC.mu.Lock()
	require.Equal(t, 1, sinkC.resets)
	require.GreaterOrEqual(t, sinkC.rev, rev2)
	sinkC.mu.Unlock()
}

// TestConcurrentCommitsConflict: two links change the same key from the
// same revision at once: exactly one wins, the other gets a ConflictError
// naming the key, and nothing of the loser's transaction is written.
func TestConcurrentCommitsConflict(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	a, sinkA := startLink(t, srv.Endpoint(), "a")
	b, _ := startLink(t, srv.Endpoint(), "b")
	ctx := context.Background()
	base, err := a.Commit(ctx, Put("state/pools/web/backends/x", []byte(`{"drain":false}`), IfAbsent))
	require.NoError(t, err)
	require.NoError(t, a.WaitApplied(ctx, base))
	require.NoError(t, b.WaitApplied(ctx, base))

	for round := range 10 {
		kv, _ := sinkA.get("state/pools/web/backends/x")
		var wg sync.WaitGroup
		errs := make([]error, 2)
		revs := make([]int64, 2)
		for i, l := range []*Link{a, b} {
			wg.Go(func() {
				revs[i], errs[i] = l.Commit(ctx,
					Put("state/pools/web/backends/x", fmt.Appendf(nil, `{"by":%d,"round":%d}`, i, round), kv.ModRevision),
					Put(fmt.Sprintf("state/side-effect-%d-%d", i, round), []byte("1"), IfAny))
			})
		}
		wg.Wait()
		won := 0
		for i, err := range errs {
			if err == nil {
				won++
				continue
			}
			require.ErrorIs(t, err, ErrConflict)
			var ce *ConflictError
			require.True(t, errors.As(err, &ce))
			require.Equal(t, "state/pools/web/backends/x", ce.Key)
			require.Equal(t, kv.ModRevision, ce.Want)
			require.Greater(t, ce.Got, kv.ModRevision)
			require.Contains(t, err.Error(), "state/pools/web/backends/x: it was changed at revision")
			require.NotContains(t, etcdState(t, srv.Client()), fmt.Sprintf("state/side-effect-%d-%d", i, round),
				"the loser's transaction wrote nothing")
		}
		require.Equal(t, 1, won, "round %d: %v", round, errs)
		require.NoError(t, a.WaitApplied(ctx, max(revs[0], revs[1])))
		require.Equal(t, etcdState(t, srv.Client()), sinkA.values())
	}

	_, err = b.Commit(ctx, Put("state/pools/web/backends/x", []byte("{}"), IfAbsent))
	require.EqualError(t, err, fmt.Sprintf("fleet: conflict on state/pools/web/backends/x: it already exists (changed at revision %d)",
		errConflictGot(err)))
	_, err = b.Commit(ctx, Delete("state/nope", 5))
	require.EqualError(t, err, "fleet: conflict on state/nope: it was deleted since revision 5")
}

func errConflictGot(err error) int64 {
	var ce *ConflictError
	if errors.As(err, &ce) {
		return ce.Got
	}
	return -1
}

// TestCommitRefusesBadOps: what cannot be a transaction is refused before
// anything is sent.
func TestCommitRefusesBadOps(t *testing.T) {
	for _, tc := range []struct {
		name string
		ops  []Op
		want string
	}{
		{"none", nil, "fleet: invalid op: no ops"},
		{"empty key", []Op{Put("", nil, IfAny)}, "fleet: invalid op: empty key"},
		{"registry", []Op{Put("replicas/x", nil, IfAny)}, "fleet: invalid op: replicas/x is under replicas/, the replica registry"},
		{"twice", []Op{Put("a", nil, IfAny), Delete("a", IfAny)}, "fleet: invalid op: a appears twice in one transaction"},
		{"bad revision", []Op{Put("a", nil, -2)}, "fleet: invalid op: a: IfModRevision -2 (want -1, 0 or a revision)"},
		{"delete absent", []Op{Delete("a", IfAbsent)}, "fleet: invalid op: a: a delete that requires the key to be absent does nothing"},
		{"too many", make([]Op, 129), "fleet: invalid op: 129 ops in one transaction; etcd takes at most 128 by default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkOps(tc.ops)
			require.ErrorIs(t, err, ErrInvalidOp)
			require.EqualError(t, err, tc.want)
		})
	}
	require.NoError(t, checkOps([]Op{Put("a", nil, IfAbsent), Delete("b", 7), Put("c", nil, IfAny)}))
}

// TestWaitAppliedEndsWithTheLink: a waiter for a revision that never comes
// gives up with its context, or when the link stops.
func TestWaitAppliedEndsWithTheLink(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	l, _ := startLink(t, srv.Endpoint(), "a")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := l.WaitApplied(ctx, 1<<40)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	done := make(chan error, 1)
	go func() { done <- l.WaitApplied(context.Background(), 1<<40) }()
	stopLink(t, l)
	require.ErrorContains(t, <-done, "stopped")
}
