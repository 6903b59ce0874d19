package proxy

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func sampleEvent(s string, f float64) *TapEvent {
	return &TapEvent{
		ReqID: s, Time: time.Date(2026, 3, 4, 5, 6, 7, 890123456, time.UTC), Method: "GET", Host: s, Path: "/" + s,
		Client: "127.0.0.1", Pool: "default", Route: s, Policy: "p2c-ewma", By: "policy", Backend: "http://127.0.0.1:1",
		Name: s, Status: 200, LatencyMs: f, Reject: "", Sampled: []string{"http://127.0.0.1:1", s},
		Candidates: []TapCandidate{
			{Backend: "http://127.0.0.1:1", Name: s, Eligible: true, State: "healthy", Cost: f * 1e6, EWMAMs: f,
				Inflight: 3, Weight: 2, WarmFactor: 0.5, Sampled: true, Chosen: true},
			{Backend: s, Reason: "draining", State: "draining", WarmFactor: 1, Canary: true},
		},
		Attempts: []TapAttempt{{Backend: "http://127.0.0.1:1", Status: 503, LatencyMs: f, Error: s}, {Backend: s, Name: s}},
	}
}

// The tap's own encoder writes what encoding/json writes, byte for byte:
// its struct tags stay the one definition of the event's shape.
func TestTapJSONMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uote\back`, "<a href=x>&amp;</a>", "tab\tnl\nctl\x01\x1f",
		"héllo wörld ✓", "bad utf8 \xff\xfe end", "line\u2028sep\u2029", "emoji 🎉"} {
		for _, f := range []float64{0, 1, 1.5, 0.001, 1234.567, 1e-7, 3e21, -2.5, 123456789012} {
			e := sampleEvent(s, f)
			want, err := json.Marshal(e)
			require.NoError(t, err)
			require.Equal(t, string(want), string(e.AppendJSON(nil)), "s=%q f=%v", s, f)
		}
	}
	empty := &TapEvent{}
	want, _ := json.Marshal(empty)
	require.Equal(t, string(want), string(empty.AppendJSON(nil)))
	inf := &TapEvent{Candidates: []TapCandidate{{Cost: math.Inf(1)}}, Attempts: []TapAttempt{}}
	var back TapEvent
	require.NoError(t, json.Unmarshal(inf.AppendJSON(nil), &back), "a cost over a zero weight still encodes")
}

func FuzzTapJSON(f *testing.F) {
	f.Add("x", 1.25)
	f.Add("\xc3\x28<>&\u2028", 1e-9)
	f.Fuzz(func(t *testing.T, s string, x float64) {
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return
		}
		e := sampleEvent(s, x)
		want, err := json.Marshal(e)
		require.NoError(t, err)
		require.Equal(t, string(want), string(e.AppendJSON(nil)))
	})
}
