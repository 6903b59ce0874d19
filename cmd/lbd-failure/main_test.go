package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/internal/loadgen"
)

func TestScenarioIsRequired(t *testing.T) {
	for _, args := range [][]string{nil, {"overload"}} {
		var out, errb bytes.Buffer
		require.Equal(t, 2, run(context.Background(), args, &out, &errb), args)
		require.Contains(t, errb.String(), "usage: lbd-failure detect|flaky")
	}
}

func TestFlagsAreBounded(t *testing.T) {
	for _, args := range [][]string{{"-down", "1h"}, {"-rate", "0"}, {"-rate", "1e6"}} {
		_, err := parseDetect(args, io.Discard)
		require.Error(t, err, args)
	}
	for _, args := range [][]string{
		{"-modes", "all,nope"}, {"-error-rate", "2"}, {"-c", "0"}, {"-duration", "1h"}, {"-repeat", "11"},
	} {
		_, err := parseFlaky(args, io.Discard)
		require.Error(t, err, args)
	}
	o, err := parseFlaky(nil, io.Discard)
	require.NoError(t, err)
	require.Equal(t, []string{"none", "breaker", "outlier", "retries", "all"}, o.modes)
	require.False(t, o.aimd)
	for _, args := range [][]string{
		{"-rate", "0"}, {"-rate", "1e6"}, {"-slower", "0s"}, {"-spell", "1h"}, {"-window", "1ms"}, {"-share", "1"},
	} {
		_, err := parseRecover(args, io.Discard)
		require.Error(t, err, args)
	}
	r, err := parseRecover(nil, io.Discard)
	require.NoError(t, err)
	require.Equal(t, 1000.0, r.rate)
	require.Equal(t, 20*time.Millisecond, r.slower)
	require.Equal(t, 10*time.Second, r.spell)
	for _, args := range [][]string{{"-c", "0"}, {"-runs", "0"}, {"-runs", "51"}, {"-before", "1h"}} {
		_, err := parseKill(args, io.Discard)
		require.Error(t, err, args)
	}
	k, err := parseKill(nil, io.Discard)
	require.NoError(t, err)
	require.Equal(t, 16, k.concurrency)
	require.Equal(t, 10, k.runs)
}

func TestMissingBinaryIsReported(t *testing.T) {
	for _, sc := range []string{"detect", "flaky", "recover", "kill"} {
		var out, errb bytes.Buffer
		require.Equal(t, 1, run(context.Background(), []string{sc, "-lbd", t.TempDir() + "/nope"}, &out, &errb))
		require.Contains(t, errb.String(), "go build")
	}
}

func TestExpectationsFollowTheConfig(t *testing.T) {
	h := config.Default().Health // 2s ± 20%, fall 3, rise 2
	down := probeRuns(h, h.Fall)
	require.InDelta(t, 5.013, down.mean.Seconds(), 0.001, "a residual of 1.013s plus two intervals")
	require.Equal(t, 3200*time.Millisecond, down.lo)
	require.Equal(t, 7200*time.Millisecond, down.hi)
	up := probeRuns(h, h.Rise)
	require.InDelta(t, 3.013, up.mean.Seconds(), 0.001)
	require.Equal(t, "mean 3.0s (1.6-4.8s)", up.String())

	h.Jitter = 0
	require.Equal(t, expectation{mean: 5 * time.Second, lo: 4 * time.Second, hi: 6 * time.Second}, probeRuns(h, 3))
}

func TestModesAreValidConfigs(t *testing.T) {
	for _, m := range flakyModes {
		cfg := baseConfig([]string{"http://127.0.0.1:9001", "http://127.0.0.1:9002"})
		m.apply(cfg)
		data, err := json.Marshal(cfg)
		require.NoError(t, err)
		back, err := config.Parse(data)
		require.NoError(t, err, m.name)
		require.NoError(t, back.Validate(), m.name)
		require.Equal(t, "off", back.AccessLog.Mode)
		require.Equal(t, strings.Contains("outlier all", m.name), !back.Outlier.Disabled, m.name)
		require.Equal(t, strings.Contains("retries all", m.name), back.Retries.Max > 0, m.name)
		require.Equal(t, m.name != "none", back.Breaker.FailureThreshold == config.Default().Breaker.FailureThreshold, m.name)
	}
}

func TestClientErrors(t *testing.T) {
	r := &loadgen.Result{
		Errors: 5, ErrorKinds: map[string]int64{"canceled": 3, "reset": 2},
		Status: map[int]int64{200: 90, 204: 1, 404: 1, 502: 2, 503: 4},
	}
	require.EqualValues(t, 2+1+2+4, clientErrors(r), "the generator's own cancels are not the server's doing")
	require.Equal(t, "0.001%", percent(1, 100_000))
	require.Equal(t, "0.00010%", percent(1, 1_000_000), "not rounded to zero")
	require.Equal(t, "0.000%", percent(0, 100_000))
	require.Equal(t, "-", percent(0, 0))
}

// TestRecoverSummary: "back" is the end of the first window after the spell
// above the share, "for good" the first from which every later one is; the
// expectation is the decay's grace + tau x ln(slow/fast) + a tick.
func TestRecoverSummary(t *testing.T) {
	o := recoverOptions{spell: 2 * time.Second, share: 0.2}
	w := func(at time.Duration, b3 uint64) shareWindow {
		return shareWindow{at: at, requests: [3]uint64{50, 50, b3}}
	}
	r := &recoverResult{slowEWMA: 21, fastEWMA: 1, windows: []shareWindow{
		w(1500*time.Millisecond, 0), w(2*time.Second, 1), // the spell's second half: 1 of 201
		w(2500*time.Millisecond, 5), w(3*time.Second, 40), w(3500*time.Millisecond, 10), // back, then not
		w(4*time.Second, 30), w(4500*time.Millisecond, 33),
	}}
	r.summarise(o)
	require.Equal(t, time.Second, r.back)
	require.Equal(t, 2*time.Second, r.sustained)
	require.InDelta(t, 1.0/201, r.duringShare, 1e-9)
	require.InDelta(t, 0.2+3.0445+0.1, r.expectBack.Seconds(), 0.001)
	require.InDelta(t, 40.0/140, w(0, 40).share(2), 1e-9)
	require.Zero(t, shareWindow{}.share(2))
}
