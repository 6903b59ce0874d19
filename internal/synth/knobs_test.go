package synth

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestKnobsDefaultsAndClamp(t *testing.T) {
	tests := []struct {
		name string
		in   Knobs
		want Knobs
	}{
		{"zero", Knobs{}, Knobs{ErrorStatus: 500, HealthStatus: 200}},
		{"kept", Knobs{Name: "b", ErrorStatus: 503, HealthStatus: 204, Size: 3},
			Knobs{Name: "b", ErrorStatus: 503, HealthStatus: 204, Size: 3}},
		{"clamped", Knobs{Latency: -time.Second, ErrorRate: 2, HangRate: -1, Size: -5},
			Knobs{ErrorStatus: 500, HealthStatus: 200, ErrorRate: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.in.withDefaults())
		})
	}
}

func TestKnobsValidate(t *testing.T) {
	tests := []struct {
		name    string
		k       Knobs
		wantErr string
	}{
		{"zero ok", Knobs{}, ""},
		{"typical ok", Knobs{Latency: 10 * time.Millisecond, ErrorRate: 0.1, HangRate: 0.1, ErrorStatus: 503}, ""},
		{"negative latency", Knobs{Latency: -1}, "latency"},
		{"rate above one", Knobs{ErrorRate: 1.5}, "error rate"},
		{"rates sum above one", Knobs{ErrorRate: 0.6, HangRate: 0.6}, "must not exceed 1"},
		{"bad status", Knobs{ErrorStatus: 42}, "error status 42"},
		{"bad health", Knobs{HealthStatus: 700}, "health status 700"},
		{"huge size", Knobs{Size: MaxSize + 1}, "size"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.k.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

func TestKnobsJSON(t *testing.T) {
	k := Knobs{Name: "b1", Latency: 10 * time.Millisecond, Jitter: 2 * time.Millisecond, ErrorRate: 0.1, Size: 64}
	b, err := json.Marshal(k)
	require.NoError(t, err)
	require.Contains(t, string(b), `"latency":"10ms"`)

	var back Knobs
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, k, back)

	// A partial document changes only what it names.
	require.NoError(t, json.Unmarshal([]byte(`{"latency":"500ms","hang_rate":0.5}`), &back))
	want := k
	want.Latency, want.HangRate = 500*time.Millisecond, 0.5
	require.Equal(t, want, back)

	require.ErrorContains(t, json.Unmarshal([]byte(`{"latency":"soon"}`), &back), "latency")
	require.ErrorContains(t, json.Unmarshal([]byte(`{"latencyy":"1s"}`), &back), "unknown field")
}
