package controller

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Latency histogram layout: log-linear buckets over microseconds, 8
// sub-buckets per power of two, so a bucket spans at most 1/8 of its lower
// bound (12.5%). Values below 8 µs have a bucket each; values beyond 2^40 µs
// (about 12 days) share the last one.
const (
	subBits  = 3
	subCount = 1 << subBits
	maxExp   = 40
	nBuckets = (maxExp - subBits + 1) * subCount
)

// samples is one control interval's worth of observations. The data plane
// writes it with atomic adds and never locks; the limiter actor swaps in a
// fresh one on each tick and reads the old one. A writer that loaded the old
// pointer just before the swap may land its sample after the read: that
// sample is lost, which a controller acting on hundreds of samples per
// interval does not notice (the same trade as grpc-go's outlier-detection
// call counter and backendactor's bucket).
type samples struct {
	counts   [nBuckets]atomic.Uint64
	n        atomic.Uint64
	failed   atomic.Uint64
	rejected atomic.Uint64 // refused by the soft limit
	peak     atomic.Int64  // highest in-flight count seen at admission
}

func (s *samples) observe(latency time.Duration, failed bool) {
	s.counts[bucketOf(latency)].Add(1)
	s.n.Add(1)
	if failed {
		s.failed.Add(1)
	}
}

// admitted raises peak to inflight. The load comes first so that the common
// case, a value below the current peak, costs no write to the shared line.
func (s *samples) admitted(inflight int64) {
	for {
		p := s.peak.Load()
		if inflight <= p || s.peak.CompareAndSwap(p, inflight) {
			return
		}
	}
}

// bucketOf maps a latency to its histogram bucket.
func bucketOf(d time.Duration) int {
	us := uint64(max(d, 0) / time.Microsecond)
	if us < subCount {
		return int(us)
	}
	e := bits.Len64(us) - subBits - 1 // shift that leaves subBits+1 significant bits
	i := (e+1)*subCount + int(us>>e) - subCount
	return min(i, nBuckets-1)
}

// bucketBounds returns a bucket's range [lo, hi) in microseconds.
func bucketBounds(i int) (lo, hi uint64) {
	if i < subCount {
		return uint64(i), uint64(i) + 1
	}
	e := i/subCount - 1
	m := uint64(i%subCount + subCount)
	return m << e, (m + 1) << e
}

// quantile returns the latency below which the fraction q of the samples
// fall, as the midpoint of the bucket that holds the rank, and the number of
// samples. With no samples it returns 0, 0.
func (s *samples) quantile(q float64) (time.Duration, uint64) {
	var counts [nBuckets]uint64
	var n uint64
	for i := range counts {
		counts[i] = s.counts[i].Load()
		n += counts[i]
	}
	if n == 0 {
		return 0, 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = min(max(rank, 1), n)
	var seen uint64
	for i, c := range counts {
		seen += c
		if seen >= rank {
			lo, hi := bucketBounds(i)
			return time.Duration(lo+hi) * time.Microsecond / 2, n
		}
	}
	return 0, n // unreachable: seen reaches n
}
