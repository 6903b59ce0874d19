package proxy

import (
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func TestTokenBucketBurstThenSteadyRate(t *testing.T) {
	c := newClientLimits(10, 5, 1000, time.Minute) // 10/s, burst 5
	for i := range 5 {
		ok, _ := c.allow("198.51.100.7", t0)
		require.True(t, ok, "burst request %d", i)
	}
	ok, wait := c.allow("198.51.100.7", t0)
	require.False(t, ok, "the burst is spent")
	require.Equal(t, 100*time.Millisecond, wait, "one token comes back every 100ms")

	now := t0
	for i := range 50 { // steady: exactly one request per 100ms gets through
		now = now.Add(100 * time.Millisecond)
		ok, _ := c.allow("198.51.100.7", now)
		require.True(t, ok, "steady request %d", i)
		ok, wait := c.allow("198.51.100.7", now)
		require.False(t, ok, "a second request in the same instant, step %d", i)
		require.Equal(t, 100*time.Millisecond, wait)
	}

	now = now.Add(time.Hour) // a long pause refills the bucket to the burst, not beyond
	for range 5 {
		ok, _ := c.allow("198.51.100.7", now)
		require.True(t, ok)
	}
	ok, _ = c.allow("198.51.100.7", now)
	require.False(t, ok)
}

func TestTokenBucketClientsAreIndependent(t *testing.T) {
	c := newClientLimits(1, 2, 1000, time.Minute)
	for range 2 {
		ok, _ := c.allow("a", t0)
		require.True(t, ok)
	}
	ok, _ := c.allow("a", t0)
	require.False(t, ok, "a spent its burst")
	for _, k := range []string{"b", "c", "2001:db8::1"} {
		for range 2 {
			ok, _ := c.allow(k, t0)
			require.True(t, ok, "%s has its own bucket", k)
		}
	}
	require.Equal(t, 4, c.len())
}

func TestIdleClientsAreEvicted(t *testing.T) {
	c := newClientLimits(1, 1, 16, time.Minute) // one shard of 16
	require.Len(t, c.shards, 1)
	for i := range 10 {
		c.allow("idle-"+strconv.Itoa(i), t0)
	}
	require.Equal(t, 10, c.len())
	later := t0.Add(2 * time.Minute)
	for range 3 { // each visit evicts up to idleSweep idle entries
		c.allow("active", later)
	}
	require.Equal(t, 1, c.len(), "only the active client is left")

	ok, _ := c.allow("idle-0", later)
	require.True(t, ok, "an evicted client comes back with a full bucket")
}

func TestFullShardEvictsLeastRecentlyUsed(t *testing.T) {
	c := newClientLimits(1, 1, 16, time.Hour)
	for i := range 16 {
		c.allow("k"+strconv.Itoa(i), t0.Add(time.Duration(i)*time.Second))
	}
	c.allow("k0", t0.Add(time.Minute)) // k0 is now the most recent; k1 the least
	c.allow("new", t0.Add(time.Minute))
	require.Equal(t, 16, c.len())
	ok, _ := c.allow("k0", t0.Add(time.Minute))
	require.False(t, ok, "k0 kept its (spent) bucket")
	ok, _ = c.allow("k1", t0.Add(time.Minute))
	require.True(t, ok, "k1 was evicted and starts afresh")
}

// TestMillionDistinctClientsStayBounded is the flood of distinct source
// addresses: memory must follow the cap, not the number of keys.
func TestMillionDistinctClientsStayBounded(t *testing.T) {
	const keys, maxClients = 1_000_000, 10_000
	before := heapInUse()
	c := newClientLimits(5, 10, maxClients, time.Minute)
	capacity := c.capacity()
	require.LessOrEqual(t, capacity, maxClients)

	buf := make([]byte, 0, 32)
	now := t0
	for i := range keys {
		buf = strconv.AppendInt(append(buf[:0], "10."...), int64(i), 10)
		if ok, _ := c.allow(string(buf), now); !ok {
			t.Fatalf("key %d is new and must have its burst", i)
		}
		if i%100_000 == 0 {
			require.LessOrEqual(t, c.len(), capacity, "after %d keys", i)
			now = now.Add(time.Second)
		}
	}
	tracked := c.len()
	after := heapInUse()
	runtime.KeepAlive(c)
	require.LessOrEqual(t, tracked, capacity)
	require.Greater(t, tracked, capacity*9/10, "the cap is used, not wasted")
	growth := int64(after) - int64(before)
	t.Logf("%d distinct keys: %d tracked (cap %d of max_clients %d), heap +%.1f MiB (%d bytes per tracked client)",
		keys, tracked, capacity, maxClients, float64(growth)/(1<<20), growth/int64(tracked))
	require.Less(t, growth, int64(maxClients*1024), "about a few hundred bytes per tracked client, whatever the flood")
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func TestShardCountFollowsTheCap(t *testing.T) {
	for _, c := range []struct{ max, shards int }{{1, 1}, {16, 1}, {100, 4}, {1024, 64}, {100_000, 64}} {
		t.Run(fmt.Sprint(c.max), func(t *testing.T) {
			l := newClientLimits(1, 1, c.max, time.Minute)
			require.Len(t, l.shards, c.shards)
			require.LessOrEqual(t, l.capacity(), c.max)
			require.Positive(t, l.capacity())
		})
	}
}
