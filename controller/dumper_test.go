package controller

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/actor"
)

// fakeLBD registers the metric families the dumper reads, under lbd's names.
type fakeLBD struct {
	reg                *prometheus.Registry
	requests, rejected *prometheus.CounterVec
	retries            prometheus.Counter
	ewma, inflight     *prometheus.GaugeVec
	state              *prometheus.GaugeVec
	limit              prometheus.Gauge
}

func newFakeLBD() *fakeLBD {
	f := &fakeLBD{reg: prometheus.NewRegistry()}
	f.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lbd_requests_total", Help: "h"}, []string{"backend", "code"})
	f.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lbd_rejected_total", Help: "h"}, []string{"reason"})
	f.retries = prometheus.NewCounter(prometheus.CounterOpts{Name: "lbd_retries_total", Help: "h"})
	f.ewma = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "lbd_backend_ewma_seconds", Help: "h"}, []string{"backend"})
	f.inflight = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "lbd_backend_inflight", Help: "h"}, []string{"backend"})
	f.state = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "lbd_backend_state", Help: "h"}, []string{"backend", "state"})
	f.limit = prometheus.NewGauge(prometheus.GaugeOpts{Name: "lbd_admission_limit", Help: "h"})
	f.reg.MustRegister(f.requests, f.rejected, f.retries, f.ewma, f.inflight, f.state, f.limit)
	return f
}

func TestReduceReadsLBDMetrics(t *testing.T) {
	f := newFakeLBD()
	a, b := "http://127.0.0.1:8081", "http://127.0.0.1:8082"
	f.requests.WithLabelValues(a, "200").Add(7)
	f.requests.WithLabelValues(a, "502").Add(1)
	f.requests.WithLabelValues(b, "200").Add(3)
	f.requests.WithLabelValues("none", "503").Add(2)
	f.rejected.WithLabelValues("overload").Add(2)
	f.rejected.WithLabelValues("rate-limit")
	f.retries.Add(1)
	f.ewma.WithLabelValues(a).Set(0.0125)
	f.inflight.WithLabelValues(b).Set(4)
	f.state.WithLabelValues(a, "healthy").Set(1)
	f.state.WithLabelValues(a, "ejected").Set(0)
	f.limit.Set(64)
	mfs, err := f.reg.Gather()
	require.NoError(t, err)

	at := time.Unix(1000, 0)
	s := Reduce(mfs, at)
	require.Equal(t, at, s.Time)
	require.Equal(t, Totals{Requests: 13, Errors: 3, Retries: 1, Rejected: map[string]uint64{"overload": 2, "rate-limit": 0}}, s.Totals)
	require.Equal(t, &AdmissionSample{Limit: 64}, s.Admission)
	require.Equal(t, []BackendSample{
		{URL: a, State: "healthy", Breaker: "", EWMAms: 12.5, Requests: 8, Errors: 1},
		{URL: b, Inflight: 4, Requests: 3},
	}, s.Backends)

	require.Nil(t, Reduce(nil, at).Admission, "no admission metrics, no admission section")
}

func TestRatesBetween(t *testing.T) {
	old := Sample{Time: time.Unix(0, 0), Totals: Totals{Requests: 100, Errors: 10, Rejected: map[string]uint64{"overload": 5}},
		Backends: []BackendSample{{URL: "a", Requests: 60}, {URL: "b", Requests: 40}}}
	cur := Sample{Time: time.Unix(10, 0), Totals: Totals{Requests: 300, Errors: 10, Retries: 20, Rejected: map[string]uint64{"overload": 25}},
		Backends: []BackendSample{{URL: "a", Requests: 160}, {URL: "b", Requests: 10}, {URL: "c", Requests: 50}}}
	r := RatesBetween(old, cur)
	require.Equal(t, Rates{
		Window: 10, Requests: 20, Errors: 0, Retries: 2,
		Rejected: map[string]float64{"overload": 2},
		Backends: map[string]float64{"a": 10, "b": 0, "c": 5}, // b went backwards: re-added
	}, r)
	require.Zero(t, RatesBetween(cur, cur).Requests, "no time, no rate")
}

func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), "line %q", sc.Text())
		out = append(out, m)
	}
	return out
}

func TestRotatorKeepsExactlyKeepFiles(t *testing.T) {
	dir := t.TempDir()
	// Files left by an earlier run count against keep; other files are not ours.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "lb-metrics-20000101T000000.000Z-0001.log"), []byte("{}\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o600))

	r, err := newRotator(dir, 3, 2)
	require.NoError(t, err)
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 9 {
		// Two files start in the same millisecond: the sequence keeps them apart and in order.
		require.NoError(t, r.write(fmt.Appendf(nil, "{\"n\":%d}\n", i), at.Add(time.Duration(i/4)*time.Minute)))
	}
	require.NoError(t, r.close())

	names, err := dumpFiles(dir)
	require.NoError(t, err)
	require.Len(t, names, 3)
	var ns []float64
	for _, n := range names {
		for _, l := range readLines(t, n) {
			ns = append(ns, l["n"].(float64))
		}
	}
	require.Equal(t, []float64{4, 5, 6, 7, 8}, ns, "the newest lines, in order, two per file")
	_, err = os.Stat(filepath.Join(dir, "notes.txt"))
	require.NoError(t, err)
}

func TestDumperWritesRotatedJSONLines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		f := newFakeLBD()
		reg := actor.NewRegistry()
		d, err := NewDumper(DumperConfig{
			Gatherer: f.reg, Dir: dir, Interval: 10 * time.Second, Keep: 2, FileSpan: 30 * time.Second,
			Registry: reg,
		})
		require.NoError(t, err)
		require.Equal(t, 1, reg.Len())
		<-time.After(5500 * time.Millisecond) // between ticks: the counter never moves at a sample
		for range 10 {
			f.requests.WithLabelValues("http://b:1", "200").Add(50)
			f.ewma.WithLabelValues("http://b:1").Set(0.002)
			<-time.After(10 * time.Second)
			synctest.Wait()
		}
		v := d.View()
		require.Equal(t, uint64(500), v.Sample.Requests)
		require.Equal(t, 10.0, v.Rates.Window)
		require.InDelta(t, 5.0, v.Rates.Requests, 1e-9, "50 requests in the 10s window")

		require.NoError(t, d.Stop(context.Background()))
		names, err := dumpFiles(dir)
		require.NoError(t, err)
		require.Len(t, names, 2, "10 lines + the last one at stop, 3 a file, 2 files kept")
		var lines []map[string]any
		for _, n := range names {
			lines = append(lines, readLines(t, n)...)
		}
		require.Len(t, lines, 3+2)
		for _, l := range lines[:4] { // the last line, at stop, covers half an interval
			for _, k := range []string{"time", "requests", "errors_5xx", "retries", "rejected", "admission", "backends", "rates"} {
				require.Contains(t, l, k)
			}
			require.Equal(t, 5.0, l["rates"].(map[string]any)["requests_per_s"])
			require.Equal(t, 2.0, l["backends"].([]any)[0].(map[string]any)["ewma_ms"])
			require.Equal(t, 0.0, l["admission"].(map[string]any)["limit"])
		}
		require.Equal(t, 500.0, lines[4]["requests"])
	})
}

func TestDumperWithoutDirOnlyKeepsTheWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeLBD()
		d, err := NewDumper(DumperConfig{Gatherer: f.reg, Window: 5 * time.Second})
		require.NoError(t, err)
		f.retries.Add(10)
		<-time.After(5 * time.Second)
		synctest.Wait()
		require.Equal(t, uint64(10), d.View().Sample.Retries)
		require.Equal(t, 2.0, d.View().Rates.Retries)
		require.NoError(t, d.Stop(context.Background()))
	})
}

func TestDumperRefusesAnUnusableDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	_, err := NewDumper(DumperConfig{Gatherer: prometheus.NewRegistry(), Dir: filepath.Join(file, "sub")})
	require.ErrorContains(t, err, "metrics_dump.dir")
}
