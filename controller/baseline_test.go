package controller

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBaselineNext(t *testing.T) {
	ms := time.Millisecond
	step := 1 - math.Exp(-0.5/30) // one 500 ms interval of a 30 s window
	w := func(lat time.Duration) Window { return Window{Samples: 100, Latency: lat} }
	cases := []struct {
		name        string
		b           time.Duration
		w           Window
		inPlay, low bool
		want        time.Duration
	}{
		{"first idle interval: its latency", 0, w(120 * ms), false, false, 120 * ms},
		{"nothing learned while in play", 0, w(450 * ms), true, false, 0},
		{"falls at once", 120 * ms, w(80 * ms), false, false, 80 * ms},
		{"falls at once even in play", 120 * ms, w(80 * ms), true, false, 80 * ms},
		{"rises slowly out of play", 100 * ms, w(200 * ms), false, false, 100*ms + time.Duration(step*float64(100*ms))},
		{"never rises in play", 100 * ms, w(200 * ms), true, false, 100 * ms},
		{"at the floor and over: the latency is the backends'", 20 * ms, w(120 * ms), true, true, 120 * ms},
		{"too few samples: nothing", 20 * ms, Window{Samples: 3, Latency: 200 * ms}, false, false, 20 * ms},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Baseline{c.b}.Next(c.w, c.inPlay, c.low, 500*ms)
			require.InDelta(t, float64(c.want), float64(got.Value), 1e3)
		})
	}
}

func TestBaselineTarget(t *testing.T) {
	ms := time.Millisecond
	require.Equal(t, 100*ms, Baseline{}.Target(TargetRelative, 100*ms, 2), "nothing learned: target_latency")
	require.Equal(t, 100*ms, Baseline{5 * ms}.Target(TargetRelative, 100*ms, 2), "fast backends: target_latency is the floor")
	require.Equal(t, 240*ms, Baseline{120 * ms}.Target(TargetRelative, 100*ms, 2), "slow ones: twice their own")
	require.Equal(t, 100*ms, Baseline{120 * ms}.Target(TargetAbsolute, 100*ms, 2), "absolute: target_latency alone")
}
