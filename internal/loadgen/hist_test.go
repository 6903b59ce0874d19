package loadgen

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBucketBoundsRoundTrip(t *testing.T) {
	vals := []uint64{0, 1, exact - 1, exact, exact + 1, 1000, 999_999, 1 << 40, 1<<63 - 1}
	for _, v := range vals {
		i := bucket(v)
		require.Less(t, i, nBuckets)
		lo, hi := bounds(i)
		require.LessOrEqual(t, lo, v, "v=%d", v)
		require.GreaterOrEqual(t, hi, v, "v=%d", v)
		require.LessOrEqual(t, float64(hi-lo), float64(v)/half, "bucket width bounds the relative error")
	}
	// Buckets are contiguous and ordered.
	for i := 1; i < 2000; i++ {
		_, prevHi := bounds(i - 1)
		lo, _ := bounds(i)
		require.Equal(t, prevHi+1, lo, "i=%d", i)
	}
}

func TestPercentilesOfKnownSamples(t *testing.T) {
	tests := []struct {
		name                string
		samples             []time.Duration
		p50, p90, p99, maxV time.Duration
	}{
		{"one sample", []time.Duration{7 * time.Millisecond},
			7 * time.Millisecond, 7 * time.Millisecond, 7 * time.Millisecond, 7 * time.Millisecond},
		{"1..100 ms", seq(100, time.Millisecond),
			50 * time.Millisecond, 90 * time.Millisecond, 99 * time.Millisecond, 100 * time.Millisecond},
		{"bimodal", append(repeat(90, time.Millisecond), repeat(10, time.Second)...),
			time.Millisecond, time.Millisecond, time.Second, time.Second},
		{"small exact", []time.Duration{1, 2, 3, 4}, 2, 4, 4, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h histogram
			for _, s := range tc.samples {
				h.record(s)
			}
			p := h.percentiles()
			require.EqualValues(t, len(tc.samples), p.Count)
			within(t, tc.p50, p.P50)
			within(t, tc.p90, p.P90)
			within(t, tc.p99, p.P99)
			require.Equal(t, tc.maxV, p.Max)
		})
	}
}

func TestPercentilesMatchSortedSamples(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h histogram
	var all []time.Duration
	for range 20000 {
		d := time.Duration(r.ExpFloat64() * float64(20*time.Millisecond))
		h.record(d)
		all = append(all, d)
	}
	slices.Sort(all)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exactV := all[int(q*float64(len(all)))-1]
		within(t, exactV, h.quantile(q))
	}
	var empty histogram
	require.Zero(t, empty.percentiles())
}

// within asserts got is want up to the histogram's relative error.
func within(t *testing.T, want, got time.Duration) {
	t.Helper()
	require.InDelta(t, float64(want), float64(got), float64(want)/half+1, "want %v got %v", want, got)
}

func seq(n int, unit time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(i+1) * unit
	}
	return out
}

func repeat(n int, d time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}
