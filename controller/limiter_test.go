package controller

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/lbd/lbd/actor"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBucketsCoverTheRangeInOrder(t *testing.T) {
	prevLo := uint64(0)
	for i := range nBuckets {
		lo, hi := bucketBounds(i)
		require.Less(t, lo, hi)
		if i > 0 {
			require.Equal(t, prevLo <= lo, true, "bucket %d starts after bucket %d", i, i-1)
		}
		require.Equal(t, i, bucketOf(time.Duration(lo)*time.Microsecond), "lower bound of %d", i)
		require.Equal(t, i, bucketOf(time.Duration(hi-1)*time.Microsecond), "upper bound of %d", i)
		require.LessOrEqual(t, float64(hi-lo), float64(max(lo, 1))/8+1, "bucket %d is at most 12.5%% wide", i)
		prevLo = lo
	}
	require.Equal(t, 0, bucketOf(-time.Second), "negative latencies count as zero")
	require.Equal(t, nBuckets-1, bucketOf(1<<62), "huge latencies share the last bucket")
}

func TestQuantileWithin12Percent(t *testing.T) {
	var s samples
	for i := 1; i <= 1000; i++ { // 1 ms .. 1000 ms, uniform
		s.observe(time.Duration(i)*time.Millisecond, false)
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 1} {
		got, n := s.quantile(q)
		want := q * 1000 * float64(time.Millisecond)
		require.EqualValues(t, 1000, n)
		require.InEpsilon(t, want, float64(got), 0.07, "p%g", q*100)
	}
	var empty samples
	d, n := empty.quantile(0.9)
	require.Zero(t, d)
	require.Zero(t, n)
}

func TestPeakKeepsTheHighest(t *testing.T) {
	var s samples
	for _, v := range []int64{3, 9, 2, 9, 5} {
		s.admitted(v)
	}
	require.EqualValues(t, 9, s.peak.Load())
}

func testLimiterConfig(algo string) LimiterConfig {
	return LimiterConfig{
		Algorithm: algo, Target: 100 * time.Millisecond, Percentile: 0.9,
		MinLimit: 4, MaxLimit: 64, Increase: 2, DecreaseFactor: 0.5, Interval: 500 * time.Millisecond, SlowStart: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// interval feeds one interval of traffic at the given in-flight level and
// latency, then lets the actor's tick run.
func interval(l *Limiter, inflight int64, lat time.Duration, n int) {
	for range n {
		l.Admitted(inflight)
		l.Observe(lat, false)
	}
	<-time.After(500 * time.Millisecond) // fake time inside the bubble: the tick fires
	synctest.Wait()
}

func TestLimiterActorFallsAndRecovers(t *testing.T) {
	for _, algo := range []string{"aimd", "gradient2"} {
		t.Run(algo, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				reg := actor.NewRegistry()
				l, err := NewLimiter(reg, testLimiterConfig(algo))
				require.NoError(t, err)
				require.EqualValues(t, 4, l.Limit(), "starts at min")
				require.True(t, l.Status().SlowStart)
				for _, want := range []int64{8, 16, 32, 64, 64} { // reached and fast: doubles up to max
					interval(l, l.Limit(), 20*time.Millisecond, 100)
					require.Equal(t, want, l.Limit())
				}
				interval(l, 10, 20*time.Millisecond, 100)
				require.EqualValues(t, 64, l.Limit(), "not reached: no change")
				for range 5 {
					interval(l, l.Limit(), 400*time.Millisecond, 100)
				}
				require.False(t, l.Status().SlowStart, "over target: slow start is over")
				low := l.Limit()
				require.Less(t, low, int64(16), "over target: the limit falls")
				require.GreaterOrEqual(t, low, int64(4), "never below min")
				st := l.Status()
				require.Equal(t, algo, st.Algorithm)
				require.Equal(t, low, st.Limit)
				require.InDelta(t, 400, st.LatencyMS, 50)
				require.Equal(t, 100, st.Samples)
				require.Positive(t, st.Decreases)

				for range 20 {
					interval(l, l.Limit(), 20*time.Millisecond, 100)
				}
				require.Greater(t, l.Limit(), low+10, "under target and reached: the limit recovers")
				require.Less(t, l.Limit(), int64(64), "by the algorithm's steps, not by doubling")
				require.LessOrEqual(t, l.Limit(), int64(64))
				require.Positive(t, l.Status().Increases)

				before := l.Limit()
				interval(l, 0, 0, 0) // idle interval
				require.Equal(t, before, l.Limit(), "nothing at all right after the limit was in play: maybe lbd stalled, hold")
				interval(l, 0, 0, 0)
				require.GreaterOrEqual(t, l.Limit(), min(64, 2*before), "still no traffic: an unused limit grows back (doubling, up to max)")
				interval(l, 0, 0, 0)
				require.EqualValues(t, 64, l.Limit())
				require.NoError(t, l.Stop(context.Background()))
				require.Equal(t, 0, reg.Len())
			})
		})
	}
}

func TestLimiterStartsAtMaxWithoutSlowStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := testLimiterConfig("aimd")
		c.SlowStart = false
		l, err := NewLimiter(nil, c)
		require.NoError(t, err)
		require.EqualValues(t, 64, l.Limit(), "refuses nothing at start")
		require.False(t, l.Status().SlowStart)
		interval(l, 40, 400*time.Millisecond, 100) // overloaded from the start
		require.EqualValues(t, 20, l.Limit(), "the first decrease starts from the peak in flight (40 x 0.5)")
		require.NoError(t, l.Stop(context.Background()))
	})
}

func TestLimiterRejectsBadConfig(t *testing.T) {
	for _, mut := range []func(*LimiterConfig){
		func(c *LimiterConfig) { c.Algorithm = "vegas" },
		func(c *LimiterConfig) { c.Target = 0 },
		func(c *LimiterConfig) { c.Percentile = 1.5 },
		func(c *LimiterConfig) { c.MinLimit, c.MaxLimit = 10, 5 },
		func(c *LimiterConfig) { c.Interval = 0 },
		func(c *LimiterConfig) { c.DecreaseFactor = 1 },
		func(c *LimiterConfig) { c.TargetMode = "p99" },
		func(c *LimiterConfig) { c.Tolerance = 0.5 },
	} {
		c := testLimiterConfig("aimd")
		mut(&c)
		_, err := NewLimiter(nil, c)
		require.Error(t, err)
	}
}

func TestLimiterReconfigure(t *testing.T) {
	l, err := NewLimiter(nil, LimiterConfig{Target: 100 * time.Millisecond, Percentile: 0.9, MinLimit: 8, MaxLimit: 1024,
		Increase: 1, DecreaseFactor: 0.7, Interval: time.Hour})
	require.NoError(t, err)
	defer func() { require.NoError(t, l.Stop(context.Background())) }()
	require.EqualValues(t, 1024, l.Limit())
	require.NoError(t, l.Reconfigure(context.Background(), LimiterConfig{Algorithm: "gradient2", Target: 50 * time.Millisecond,
		Percentile: 0.99, MinLimit: 4, MaxLimit: 100, Increase: 1, DecreaseFactor: 0.5, Interval: time.Hour}))
	require.EqualValues(t, 100, l.Limit(), "the limit in force is clamped into the new bounds")
	st := l.Status()
	require.Equal(t, "gradient2", st.Algorithm)
	require.Equal(t, 100, st.MaxLimit)
	require.Equal(t, 50.0, st.TargetMS)
	require.Error(t, l.Reconfigure(context.Background(), LimiterConfig{Target: 0, Percentile: 0.9, MinLimit: 1, MaxLimit: 2, Interval: time.Second}),
		"settings it cannot run with change nothing")
	require.Equal(t, "gradient2", l.Status().Algorithm)
}
