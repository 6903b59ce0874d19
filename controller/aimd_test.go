package controller

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var testAIMD = AIMD{Target: 100 * time.Millisecond, Min: 8, Max: 100, Increase: 1, DecreaseFactor: 0.5}

func TestAIMDNext(t *testing.T) {
	ms := time.Millisecond
	cases := []struct {
		name  string
		limit float64
		w     Window
		want  float64
	}{
		{"over target: multiply", 40, Window{Samples: 100, Latency: 150 * ms, Peak: 40}, 20},
		{"over target with half the limit in use: decrease from the peak", 100, Window{Samples: 100, Latency: 150 * ms, Peak: 60}, 30},
		{"over target and demand piling up: decrease from the peak", 100, Window{Samples: 100, Latency: 150 * ms, Peak: 30, Rising: true}, 15},
		{"slow and idle: keep", 100, Window{Samples: 100, Latency: 150 * ms, Peak: 30}, 100},
		{"failures rose, limit out of play: keep", 100, Window{Samples: 100, Failures: 30, Latency: 50 * ms, Peak: 16}, 100},
		{"failures rose under target: multiply", 40, Window{Samples: 100, Failures: 30, Latency: 50 * ms, Peak: 40}, 20},
		{"steady background failures: no decrease", 40, Window{Samples: 100, Failures: 10, Latency: 50 * ms, Peak: 40, PrevFailureRate: 0.1}, 41},
		{"reached and under target: add", 40, Window{Samples: 100, Latency: 50 * ms, Peak: 40}, 41},
		{"rejections mean reached", 40, Window{Samples: 100, Latency: 50 * ms, Peak: 12, Rejected: 3}, 41},
		{"half in use, not reached: keep", 40, Window{Samples: 100, Latency: 50 * ms, Peak: 25}, 40},
		{"out of play under target: double", 40, Window{Samples: 100, Latency: 50 * ms, Peak: 12}, 80},
		{"reached without samples (all stuck): keep", 40, Window{Peak: 40, Rejected: 50}, 40},
		{"no traffic: double", 40, Window{}, 80},
		{"nothing at all right after the limit was in play (a stall of lbd): keep", 40, Window{PrevInPlay: true}, 40},
		{"no traffic: double up to max", 60, Window{}, 100},
		{"clamp to max", 100, Window{Samples: 10, Latency: ms, Peak: 100}, 100},
		{"clamp to min", 10, Window{Samples: 10, Latency: time.Second, Peak: 10}, 8},
		{"exactly at target is not over", 40, Window{Samples: 10, Latency: 100 * ms, Peak: 40}, 41},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.InDelta(t, c.want, testAIMD.Next(c.limit, c.w), 1e-9)
		})
	}
}

func TestRising(t *testing.T) {
	cases := []struct {
		p0, p1, p2 int
		want       bool
	}{
		{0, 20, 40, true},      // an overload starting from nothing: +20, +20
		{100, 160, 230, true},  // +60, +70: over 10% each time
		{3, 15, 15, false},     // a slow spell's onset: one step, then flat
		{3, 15, 18, false},     // the second step is under the floor of 8
		{500, 540, 560, false}, // +40 then +20: under 10% of 540
		{40, 30, 50, false},    // down, then up
	}
	for _, c := range cases {
		require.Equal(t, c.want, rising(c.p0, c.p1, c.p2, 8), "%d %d %d", c.p0, c.p1, c.p2)
	}
}

// queueModel is a synthetic service: capacity concurrent workers each
// taking service time, with demand always above the limit (overload), so the
// limit is reached each interval and requests beyond capacity queue:
// latency = service x max(1, limit/capacity).
type queueModel struct {
	capacity float64
	service  func(step int) time.Duration
}

func (q queueModel) window(step int, limit float64) Window {
	lat := time.Duration(float64(q.service(step)) * max(1, limit/q.capacity))
	return Window{Samples: 500, Latency: lat, Peak: int(limit), Rejected: 100}
}

// curve: fast (20 ms) for 60 intervals, slow (80 ms, capacity unchanged)
// for 60, fast again for 120.
func curve(step int) time.Duration {
	if step >= 60 && step < 120 {
		return 80 * time.Millisecond
	}
	return 20 * time.Millisecond
}

// drive runs next over the model and returns the limit after each interval.
func drive(start float64, steps int, q queueModel, next func(limit float64, w Window) float64) []float64 {
	out := make([]float64, steps)
	limit := start
	for i := range steps {
		limit = next(limit, q.window(i, limit))
		out[i] = limit
	}
	return out
}

func TestLimitsFollowASyntheticLatencyCurve(t *testing.T) {
	q := queueModel{capacity: 10, service: curve}
	g2 := Gradient2{Target: 100 * time.Millisecond, Min: 8, Max: 100}
	var g2state Gradient2State
	algos := map[string]func(float64, Window) float64{
		"aimd": testAIMD.Next,
		"gradient2": func(limit float64, w Window) float64 {
			g2state.Limit = limit
			g2state = g2.Next(g2state, w)
			return g2state.Limit
		},
	}
	for name, next := range algos {
		t.Run(name, func(t *testing.T) {
			limits := drive(100, 240, q, next)
			for i, l := range limits {
				require.True(t, l >= 8 && l <= 100, "interval %d: limit %g left [8, 100]", i, l)
			}
			// Fast phase: latency is under target while limit <= 50 (20 ms x
			// limit/10 = 100 ms), so the limit works near 50 (gradient2's
			// queue allowance of 4 holds it a little over: 50 + 4).
			lo, hi := minMax(limits[20:60])
			require.True(t, lo >= 20 && hi <= 55, "fast phase within [20, 55]: [%.1f, %.1f]", lo, hi)
			// Slow phase: 80 ms x limit/10 crosses 100 ms at limit 12.5 (+ 4).
			slowLo, slowHi := minMax(limits[80:120])
			require.LessOrEqual(t, slowHi, 17.0, "the limit falls when latency exceeds the target")
			// Fast again: the limit recovers to the fast phase's range.
			rlo, rhi := minMax(limits[200:240])
			require.True(t, rlo >= 20 && rhi >= 45 && rhi <= 55, "recovered within [20, 55] and back near 50: [%.1f, %.1f]", rlo, rhi)
			t.Logf("%s: fast [%.1f, %.1f], slow [%.1f, %.1f], recovered [%.1f, %.1f]", name, lo, hi, slowLo, slowHi, rlo, rhi)
		})
	}
}

func TestLimitsStayInBoundsOnWildInput(t *testing.T) {
	g2 := Gradient2{Target: 50 * time.Millisecond, Min: 4, Max: 64}
	a := AIMD{Target: 50 * time.Millisecond, Min: 4, Max: 64, Increase: 3, DecreaseFactor: 0.9}
	s := Gradient2State{Limit: 64}
	limit := 64.0
	for i := range 2000 {
		// A deterministic mess: latencies from 0 to 2 s, failures, idle windows.
		w := Window{
			Samples: (i * 7919) % 300, Failures: (i * 31) % 50,
			Latency: time.Duration((i*104729)%2000) * time.Millisecond,
			Peak:    (i * 13) % 200, Rejected: (i * 3) % 5, PrevFailureRate: float64(i%10) / 10,
		}
		if w.Failures > w.Samples {
			w.Failures = w.Samples
		}
		if w.Samples == 0 {
			w.Latency = 0
		}
		limit = a.Next(limit, w)
		s = g2.Next(s, w)
		require.True(t, limit >= 4 && limit <= 64, "aimd step %d: %g", i, limit)
		require.True(t, s.Limit >= 4 && s.Limit <= 64, "gradient2 step %d: %g", i, s.Limit)
	}
}

func minMax(xs []float64) (lo, hi float64) {
	lo, hi = xs[0], xs[0]
	for _, x := range xs {
		lo, hi = min(lo, x), max(hi, x)
	}
	return lo, hi
}

func TestSlowStart(t *testing.T) {
	target := 100 * time.Millisecond
	fast := Window{Samples: 100, Latency: 20 * time.Millisecond, Peak: 16}
	cases := []struct {
		name        string
		limit, next float64
		w           Window
		want        float64
		goesOn      bool
	}{
		{"reached and fast: double", 16, 17, fast, 32, true},
		{"doubling stops at max", 64, 65, Window{Samples: 100, Latency: time.Millisecond, Peak: 64}, 100, true},
		{"not reached: the algorithm's value", 32, 32, fast, 32, true},
		{"not reached: the algorithm's regrowth waits", 32, 64, Window{Samples: 100, Latency: 20 * time.Millisecond, Peak: 3}, 32, true},
		{"the algorithm decreases: slow start ends", 16, 11, Window{Samples: 100, Latency: 150 * time.Millisecond, Peak: 16}, 11, false},
		{"over target at the floor: ends without doubling", 8, 8, Window{Samples: 100, Latency: 150 * time.Millisecond, Peak: 8}, 8, false},
		{"failures rose at the floor: ends", 8, 8, Window{Samples: 100, Failures: 50, Latency: 10 * time.Millisecond, Peak: 8}, 8, false},
		{"no samples: wait", 16, 16, Window{Peak: 16, Rejected: 9}, 16, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, on := SlowStart(c.limit, c.next, 100, target, c.w)
			require.InDelta(t, c.want, got, 1e-9)
			require.Equal(t, c.goesOn, on)
		})
	}
}
