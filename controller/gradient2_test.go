package controller

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestGradient2Next(t *testing.T) {
	ms := time.Millisecond
	g := Gradient2{Target: 100 * ms, Min: 8, Max: 200}
	cases := []struct {
		name string
		s    Gradient2State
		w    Window
		want Gradient2State
	}{
		{"first sample sets the baseline; at baseline the limit grows by the smoothed queue",
			Gradient2State{Limit: 100}, Window{Samples: 50, Latency: 20 * ms, Peak: 100},
			Gradient2State{Limit: 100.8, LongRTT: 20 * ms}},
		{"within tolerance of the baseline: grow",
			Gradient2State{Limit: 100, LongRTT: 20 * ms}, Window{Samples: 50, Latency: 29 * ms, Peak: 100},
			Gradient2State{Limit: 100.8, LongRTT: 20029950}},
		{"twice the baseline: gradient 0.75, unsmoothed",
			Gradient2State{Limit: 100, LongRTT: 20 * ms}, Window{Samples: 50, Latency: 40 * ms, Peak: 100},
			Gradient2State{Limit: 100*(1.5*20.066556/40) + 4, LongRTT: 20066555}},
		{"over the target although within tolerance: shrink toward the target",
			Gradient2State{Limit: 100, LongRTT: 90 * ms}, Window{Samples: 50, Latency: 125 * ms, Peak: 100},
			Gradient2State{Limit: 100*0.8 + 4, LongRTT: 90116472}},
		{"decrease starts from the peak",
			Gradient2State{Limit: 200, LongRTT: 20 * ms}, Window{Samples: 50, Latency: 80 * ms, Rejected: 1, Peak: 60},
			Gradient2State{Limit: 60*0.5 + 4, LongRTT: 20199667}},
		{"application-limited: no change but the baseline learns",
			Gradient2State{Limit: 100, LongRTT: 20 * ms}, Window{Samples: 50, Latency: 80 * ms, Peak: 20},
			Gradient2State{Limit: 100, LongRTT: 20199667}},
		{"failures rose: smallest gradient",
			Gradient2State{Limit: 100, LongRTT: 20 * ms}, Window{Samples: 50, Failures: 25, Latency: 20 * ms, Peak: 100},
			Gradient2State{Limit: 54, LongRTT: 20 * ms}},
		{"no samples, limit in play: unchanged",
			Gradient2State{Limit: 100, LongRTT: 20 * ms}, Window{Peak: 100, Rejected: 5},
			Gradient2State{Limit: 100, LongRTT: 20 * ms}},
		{"baseline far above the interval latency decays; unused and fast, the limit grows back",
			Gradient2State{Limit: 100, LongRTT: 100 * ms}, Window{Samples: 50, Latency: 20 * ms, Peak: 10},
			Gradient2State{Limit: 200, LongRTT: 94747088}}, // (100 ms x 599/601 + 20 ms x 2/601) x 0.95
		{"failures rose with the limit out of play: no cut",
			Gradient2State{Limit: 100, LongRTT: 20 * ms}, Window{Samples: 50, Failures: 25, Latency: 20 * ms, Peak: 16},
			Gradient2State{Limit: 100, LongRTT: 20 * ms}},
		{"idle: grows back",
			Gradient2State{Limit: 20, LongRTT: 20 * ms}, Window{},
			Gradient2State{Limit: 40, LongRTT: 20 * ms}},
		{"an empty interval right after one in play: a stall, not idle",
			Gradient2State{Limit: 20, LongRTT: 20 * ms}, Window{PrevInPlay: true},
			Gradient2State{Limit: 20, LongRTT: 20 * ms}},
		{"at the floor a decrease stays there",
			Gradient2State{Limit: 8, LongRTT: 20 * ms}, Window{Samples: 50, Latency: 2000 * ms, Peak: 8},
			Gradient2State{Limit: 8, LongRTT: 26589018}},
		{"the queue allowance never turns a decrease into a rise",
			Gradient2State{Limit: 20, LongRTT: 20 * ms}, Window{Samples: 50, Latency: 33 * ms, Peak: 20},
			Gradient2State{Limit: 20, LongRTT: 20043261}}, // gradient 0.91: 20 x 0.91 + 4 > 20
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := g.Next(c.s, c.w)
			require.InDelta(t, c.want.Limit, got.Limit, 1e-3, "limit")
			require.InDelta(t, float64(c.want.LongRTT), float64(got.LongRTT), 2, "baseline (ns)")
		})
	}
}
