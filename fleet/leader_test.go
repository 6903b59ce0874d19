package fleet

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/internal/etcdtest"
)

// TestMemberWithoutLeader: the link's member stays up but loses its
// cluster's quorum (the other two members die). The session ends — its
// requests carry WithRequireLeader, so the member answers "no leader"
// instead of keeping a quiet watch — Commit refuses with ErrUnavailable,
// and once a second member is back the link reconnects and commits again.
func TestMemberWithoutLeader(t *testing.T) {
	members := etcdtest.StartCluster(t, 3)
	l, sink := startLink(t, members[0].Endpoint(), "a")
	ctx := context.Background()
	rev, err := l.Commit(ctx, Put("state/x", []byte("1"), IfAbsent))
	require.NoError(t, err)
	require.NoError(t, l.WaitApplied(ctx, rev))

	members[1].Kill()
	members[2].Kill()
	waitStatus(t, l, "the session to end", func(s *Status) bool { return !s.Self.Connected })
	t.Logf("session ended: %s", l.Status().Self.LastError)
	start := time.Now()
	_, err = l.Commit(ctx, Put("state/y", []byte("1"), IfAbsent))
	require.ErrorIs(t, err, ErrUnavailable)
	require.Less(t, time.Since(start), 100*time.Millisecond)
	require.Equal(t, map[string]string{"state/x": "1"}, sink.values(), "the last state stays")

	members[1].Restart()
	waitStatus(t, l, "reconnected", func(s *Status) bool { return s.Self.Connected })
	rev, err = l.Commit(ctx, Put("state/y", []byte("1"), IfAbsent))
	require.NoError(t, err)
	require.NoError(t, l.WaitApplied(ctx, rev))
	require.Equal(t, map[string]string{"state/x": "1", "state/y": "1"}, sink.values())
}
