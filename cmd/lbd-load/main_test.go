package main

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/lbd/lbd/internal/loadgen"
	"github.com/lbd/lbd/internal/synth"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRunAgainstSynth(t *testing.T) {
	b, err := synth.Start("", synth.Knobs{Name: "b1"})
	require.NoError(t, err)
	defer func() { require.NoError(t, b.Close()) }()

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"table", []string{"-url", b.URL(), "-n", "20", "-c", "2"}, "b1: 20 (100.0%)"},
		{"positional without scheme", []string{"-n", "5", "-H", "X-Request-Id: abc", strings.TrimPrefix(b.URL(), "http://")}, "sent 5"},
		{"json open loop", []string{"-json", "-rate", "1000", "-n", "10", b.URL()}, `"mode": "open"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(t.Context(), tc.args, &out, &errOut)
			require.Equal(t, 0, code, errOut.String())
			require.Contains(t, out.String(), tc.want)
		})
	}

	var out bytes.Buffer
	require.Equal(t, 0, run(t.Context(), []string{"-json", "-n", "3", b.URL()}, &out, io.Discard))
	var doc map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &doc))
	require.EqualValues(t, 3, doc["completed"])
}

func TestRunRefuses(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		code    int
		wantErr string
	}{
		{"remote target", []string{"-url", "http://198.51.100.1/"}, 1, "not a loopback"},
		{"remote name", []string{"example.com:3030"}, 1, "not a loopback"},
		{"bad header", []string{"-H", "nocolon"}, 2, "Name: value"},
		{"two targets", []string{"http://127.0.0.1:1", "http://127.0.0.1:2"}, 2, "one target"},
		{"too many", []string{"-n", "100000000", "http://127.0.0.1:1"}, 1, "n 100000000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var errOut bytes.Buffer
			require.Equal(t, tc.code, run(t.Context(), tc.args, io.Discard, &errOut))
			require.Contains(t, errOut.String(), tc.wantErr)
		})
	}
}

func TestBounds(t *testing.T) {
	tests := []struct {
		args []string
		n    int
		d    time.Duration
	}{
		{nil, loadgen.DefaultN, loadgen.DefaultDuration},
		{[]string{"-d", "3s"}, loadgen.MaxN, 3 * time.Second}, // -d alone: bound by time
		{[]string{"-n", "50"}, 50, loadgen.DefaultDuration},
		{[]string{"-n", "50", "-d", "3s"}, 50, 3 * time.Second},
	}
	for _, tc := range tests {
		cfg, _, code := parse(tc.args, io.Discard, io.Discard)
		require.Equal(t, -1, code, "%v", tc.args)
		require.Equal(t, tc.n, cfg.N, "%v", tc.args)
		require.Equal(t, tc.d, cfg.Duration, "%v", tc.args)
	}
}

// -d without -n runs for -d, not until the default -n's 1000 requests.
func TestDurationAloneRunsForTheDuration(t *testing.T) {
	b, err := synth.Start("", synth.Knobs{Name: "b1"})
	require.NoError(t, err)
	defer func() { require.NoError(t, b.Close()) }()
	var out bytes.Buffer
	start := time.Now()
	require.Equal(t, 0, run(t.Context(), []string{"-json", "-c", "2", "-d", "400ms", b.URL()}, &out, io.Discard))
	require.GreaterOrEqual(t, time.Since(start), 400*time.Millisecond)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &doc))
	require.Positive(t, doc["completed"])
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"-help"}, {"-c", "3", "-h"}} {
		var out, errOut bytes.Buffer
		require.Equal(t, 0, run(t.Context(), args, &out, &errOut), "%v", args)
		require.Empty(t, errOut.String())
		require.Contains(t, out.String(), "Usage: lbd-load")
		require.Contains(t, out.String(), "-H value")
	}
	var errOut bytes.Buffer
	require.Equal(t, 2, run(t.Context(), []string{"-nope"}, io.Discard, &errOut))
	require.Contains(t, errOut.String(), "lbd-load -h")
}
