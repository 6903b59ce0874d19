package events

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/lbd/lbd/actor"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func ev(pool, backend, cause string) Event {
	return Event{Pool: pool, Backend: backend, Kind: KindState, From: "healthy", To: "draining", Cause: cause}
}

func startLog(t *testing.T, capacity int) *Log {
	t.Helper()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	l := New(Options{Capacity: capacity, Mailbox: 4096, Registry: actor.NewRegistry(), Now: func() time.Time { return at }})
	t.Cleanup(func() { require.NoError(t, l.Stop(context.Background())) })
	return l
}

func TestRecentKeepsTheLastCapacityInOrder(t *testing.T) {
	l := startLog(t, 1000)
	for i := range 1500 {
		l.Record(ev("default", fmt.Sprintf("http://b%d", i%3), fmt.Sprint(i)))
	}
	ctx := context.Background()
	all, err := l.Recent(ctx, Filter{}, 0)
	require.NoError(t, err)
	require.Len(t, all, 1000, "the last 1,000 transitions at least")
	require.Equal(t, "500", all[0].Cause)
	require.Equal(t, "1499", all[999].Cause)
	require.Equal(t, uint64(1500), all[999].Seq)
	require.Equal(t, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), all[0].Time, "stamped when recorded without a time")

	last, err := l.Recent(ctx, Filter{Backend: "http://b1"}, 3)
	require.NoError(t, err)
	require.Equal(t, []string{"1492", "1495", "1498"}, causes(last))
	named := ev("api", "http://n", "named")
	named.Name = "n-1"
	l.Record(named)
	byName, err := l.Recent(ctx, Filter{Backend: "n-1"}, 0)
	require.NoError(t, err)
	require.Equal(t, []string{"named"}, causes(byName), "a backend's name selects it too")
	none, err := l.Recent(ctx, Filter{Pool: "default", Backend: "n-1"}, 10)
	require.NoError(t, err)
	require.Empty(t, none)
}

func TestFollowSeesBacklogThenNewEventsOnce(t *testing.T) {
	l := startLog(t, 16)
	ctx := context.Background()
	l.Record(ev("api", "http://a", "one"))
	l.Record(ev("default", "http://b", "other pool"))
	l.Record(ev("api", "http://a", "two"))
	hist, sub, err := l.Follow(ctx, Filter{Pool: "api"}, 10)
	require.NoError(t, err)
	require.Equal(t, []string{"one", "two"}, causes(hist))
	l.Record(ev("default", "http://b", "filtered out"))
	l.Record(ev("api", "http://a", "three"))
	var got Event
	require.NoError(t, json.Unmarshal(<-sub.C(), &got))
	require.Equal(t, "three", got.Cause)
	require.Equal(t, uint64(5), got.Seq)
	sub.Close()

	_, sub2, err := l.Follow(ctx, Filter{}, 0)
	require.NoError(t, err)
	require.NoError(t, l.Stop(ctx))
	select {
	case <-sub2.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a stopped log must end its follows")
	}
}

func causes(es []Event) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Cause
	}
	return out
}
