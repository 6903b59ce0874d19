package controller

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/actor"
	"github.com/lbd/lbd/backendactor"
)

func outlierBackends(t *testing.T, n int) (*backendSet, []*backendactor.Handle) {
	t.Helper()
	set := &backendSet{}
	var hs []*backendactor.Handle
	for i := range n {
		h := backendactor.New(nil, backendactor.Config{
			URL: fmt.Sprintf("http://b%d:1", i), Warmup: 10 * time.Second, WarmupMinPercent: 10, SkipWarmup: true,
			Breaker: backendactor.BreakerConfig{FailureThreshold: 1_000_000, OpenFor: time.Second, HalfOpenProbes: 1},
			Logger:  quietLog,
		})
		t.Cleanup(h.Stop)
		hs = append(hs, h)
	}
	set.set(hs...)
	return set, hs
}

// serve finishes n requests on h with outcome o.
func serve(t *testing.T, h *backendactor.Handle, n int, o backendactor.Outcome) {
	t.Helper()
	for range n {
		require.True(t, h.Acquire(), "%s takes traffic", h.URL())
		h.Release(time.Millisecond, o)
	}
}

func startDetector(t *testing.T, set *backendSet, reg prometheus.Registerer, mutate func(*OutlierConfig)) *OutlierDetector {
	t.Helper()
	c := OutlierConfig{Rules: rules, Interval: 10 * time.Second, Backends: set.get, Registerer: reg, Logger: quietLog,
		Registry: actor.NewRegistry()}
	if mutate != nil {
		mutate(&c)
	}
	d, err := NewOutlierDetector(c)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, d.Stop(context.Background())) })
	return d
}

func TestDetectorEjectsAndTheBackendReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		set, hs := outlierBackends(t, 3)
		reg := prometheus.NewRegistry()
		d := startDetector(t, set, reg, nil)
		bad := hs[1]

		serve(t, bad, 5, backendactor.ServerError)
		start := time.Now()
		<-time.After(150 * time.Millisecond) // one poll
		synctest.Wait()
		require.Equal(t, backendactor.StateEjected, bad.Snapshot().State)
		require.False(t, bad.Acquire(), "an ejected backend gets no traffic")
		rep := d.Report()
		require.Len(t, rep.Ejected, 1)
		e := rep.Ejected[0]
		require.Equal(t, bad.URL(), e.URL)
		require.Equal(t, ReasonConsecutive5xx, e.Reason)
		require.Equal(t, 30*time.Second, e.Until.Sub(e.Since))
		require.Less(t, e.Since.Sub(start), 150*time.Millisecond, "seen at the next poll, not at the interval's end")
		require.Equal(t, 1, e.Ejections)
		require.Equal(t, 1.0, counterValue(t, reg, "lbd_outlier_ejections_total", "backend", bad.URL()))
		require.Zero(t, counterValue(t, reg, "lbd_outlier_ejections_total", "backend", hs[0].URL()), "every backend has its series")

		<-time.After(30 * time.Second)
		synctest.Wait()
		require.Equal(t, backendactor.StateWarming, bad.Snapshot().State, "back by itself, ramping up")
		require.Empty(t, d.Report().Ejected)

		serve(t, bad, 5, backendactor.GatewayError) // fails again at once: twice as long
		<-time.After(150 * time.Millisecond)
		synctest.Wait()
		e = d.Report().Ejected[0]
		require.Equal(t, ReasonConsecutiveGateway, e.Reason)
		require.Equal(t, time.Minute, e.Until.Sub(e.Since))
		require.Equal(t, 2, e.Ejections)
		require.Equal(t, 2.0, counterValue(t, reg, "lbd_outlier_ejections_total", "backend", bad.URL()))
	})
}

func TestDetectorRespectsMaxEjectionPercent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		set, hs := outlierBackends(t, 4)
		d := startDetector(t, set, nil, func(c *OutlierConfig) { c.Rules.BaseEjection = 2 * time.Second })
		failing := hs[1:]
		most := 0
		for range 200 { // 20s: several ejections and returns
			for _, h := range failing {
				if h.Snapshot().Eligible {
					serve(t, h, 1, backendactor.ServerError)
				}
			}
			<-time.After(100 * time.Millisecond)
			synctest.Wait()
			n := 0
			for _, h := range hs {
				if h.Snapshot().State == backendactor.StateEjected {
					n++
				}
			}
			require.LessOrEqual(t, n, 2, "3 of 4 failing with max_ejection_percent 50")
			require.LessOrEqual(t, len(d.Report().Ejected), 2)
			most = max(most, n)
		}
		require.Equal(t, 2, most)
		require.True(t, hs[0].Snapshot().Eligible, "the good one is never ejected")
	})
}

func TestDetectorSuccessRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		set, hs := outlierBackends(t, 5)
		d := startDetector(t, set, nil, nil)
		// 9s of traffic: 150 requests each; hs[2] fails 30% of them, never 5 in a row.
		for range 9 {
			for i, h := range hs {
				for k := range 15 {
					o := backendactor.Success
					if i == 2 && k%3 == 0 {
						o = backendactor.ServerError
					}
					serve(t, h, 1, o)
				}
			}
			<-time.After(time.Second)
		}
		synctest.Wait()
		require.Empty(t, d.Report().Ejected, "the window has not closed")
		<-time.After(time.Second + 100*time.Millisecond)
		synctest.Wait()
		rep := d.Report()
		require.Len(t, rep.Ejected, 1)
		require.Equal(t, hs[2].URL(), rep.Ejected[0].URL)
		require.Equal(t, ReasonSuccessRate, rep.Ejected[0].Reason)
		require.Contains(t, rep.Ejected[0].Detail, "success rate 66.7%")

		// The next window starts from zero: the healthy ones keep serving,
		// and nothing more is ejected.
		for range 10 {
			for _, h := range []*backendactor.Handle{hs[0], hs[1], hs[3], hs[4]} {
				serve(t, h, 15, backendactor.Success)
			}
			<-time.After(time.Second)
		}
		synctest.Wait()
		require.Len(t, d.Report().Ejected, 1)
	})
}

func TestDetectorForgetsRemovedBackends(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		set, hs := outlierBackends(t, 3)
		reg := prometheus.NewRegistry()
		d := startDetector(t, set, reg, nil)
		serve(t, hs[2], 5, backendactor.ServerError)
		<-time.After(150 * time.Millisecond)
		synctest.Wait()
		require.Len(t, d.Report().Ejected, 1)

		set.set(hs[0], hs[1])
		<-time.After(150 * time.Millisecond)
		synctest.Wait()
		require.Empty(t, d.Report().Ejected)
		mfs, err := reg.Gather()
		require.NoError(t, err)
		require.Len(t, mfs[0].GetMetric(), 2, "the removed backend's series is gone")
	})
}

func TestDetectorLeavesDrainingBackendsAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		set, hs := outlierBackends(t, 2)
		d := startDetector(t, set, nil, nil)
		serve(t, hs[0], 5, backendactor.ServerError)
		require.NoError(t, hs[0].Drain(context.Background(), "test drain"))
		<-time.After(time.Second)
		synctest.Wait()
		require.Empty(t, d.Report().Ejected)
		require.Equal(t, backendactor.StateDraining, hs[0].Snapshot().State)
	})
}

func TestOutlierConfigValidate(t *testing.T) {
	ok := OutlierConfig{Rules: rules, Interval: time.Second, Backends: func() []*backendactor.Handle { return nil }}
	require.NoError(t, ok.Validate())
	cases := map[string]func(*OutlierConfig){
		"interval":      func(c *OutlierConfig) { c.Interval = 0 },
		"base ejection": func(c *OutlierConfig) { c.Rules.BaseEjection = 0 },
		"max ejection":  func(c *OutlierConfig) { c.Rules.MaxEjection = time.Second },
		"percent":       func(c *OutlierConfig) { c.Rules.MaxEjectionPercent = 101 },
		"backend":       func(c *OutlierConfig) { c.Backends = nil },
	}
	for name, mutate := range cases {
		c := ok
		mutate(&c)
		require.ErrorContains(t, c.Validate(), name)
	}
	require.False(t, DisabledOutlierReport().Enabled)
	require.NotNil(t, DisabledOutlierReport().Ejected, "an empty list, not null")
}

func TestDetectorSeesARunThatASuccessEnded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		set, hs := outlierBackends(t, 3)
		d := startDetector(t, set, nil, nil)
		serve(t, hs[0], 5, backendactor.ServerError)
		serve(t, hs[0], 1, backendactor.Success) // under load the run ends long before the next poll
		<-time.After(150 * time.Millisecond)
		synctest.Wait()
		require.Len(t, d.Report().Ejected, 1)
		require.Equal(t, hs[0].URL(), d.Report().Ejected[0].URL)
	})
}
