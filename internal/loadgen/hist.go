package loadgen

import (
	"math/bits"
	"time"
)

// histogram is a log-bucketed latency histogram in the spirit of HDR: values
// below 2*half are kept exactly, above that each power-of-two range is split
// into half equal buckets, so any recorded value is known to within 1/half
// (about 1.6%) of itself. Memory is fixed (~30 KB) whatever the run length.
type histogram struct {
	counts [nBuckets]uint64
	n      uint64
	sum    uint64 // nanoseconds; overflows only after ~584 years of latency
	min    uint64
	max    uint64
}

const (
	subBits  = 6
	half     = 1 << subBits // buckets per power of two
	exact    = 2 * half     // values below this have a bucket each
	nBuckets = exact + (64-subBits-1)*half
)

// bucket maps v to its index. For v >= exact, shift is chosen so v>>shift
// lands in [half, 2*half): the top subBits+1 bits pick the bucket and the
// shifted-out bits are the (bounded) rounding error.
func bucket(v uint64) int {
	if v < exact {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1
	return exact + (shift-1)*half + int(v>>shift) - half
}

// bounds returns the smallest and largest value that map to bucket i.
func bounds(i int) (lo, hi uint64) {
	if i < exact {
		return uint64(i), uint64(i)
	}
	shift := (i-exact)/half + 1
	m := uint64((i-exact)%half + half)
	return m << shift, (m+1)<<shift - 1
}

func (h *histogram) record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[bucket(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	h.max = max(h.max, v)
	h.n++
	h.sum += v
}

// quantile returns the value at quantile q (0 < q <= 1): the midpoint of the
// bucket holding the ceil(q*n)-th smallest sample, clamped to the observed
// min and max so p100 is exact and a single sample reports itself.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.999999999)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := bounds(i)
			mid := lo + (hi-lo)/2
			return time.Duration(min(max(mid, h.min), h.max))
		}
	}
	return time.Duration(h.max)
}

// percentiles summarises the histogram.
func (h *histogram) percentiles() Percentiles {
	p := Percentiles{Count: int64(h.n)}
	if h.n == 0 {
		return p
	}
	p.Min = time.Duration(h.min)
	p.Mean = time.Duration(h.sum / h.n)
	p.P50 = h.quantile(0.50)
	p.P90 = h.quantile(0.90)
	p.P99 = h.quantile(0.99)
	p.Max = time.Duration(h.max)
	return p
}
