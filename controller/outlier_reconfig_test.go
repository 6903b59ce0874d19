package controller

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/actor"
	"github.com/lbd/lbd/backendactor"
)

func TestOutlierReconfigureRulesApplyAtTheNextPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		set, hs := outlierBackends(t, 3)
		d := startDetector(t, set, nil, nil) // consecutive 5xx: 5
		serve(t, hs[1], 3, backendactor.ServerError)
		<-time.After(150 * time.Millisecond)
		synctest.Wait()
		require.Empty(t, d.Report().Ejected, "3 failures are under the threshold of 5")

		r := rules
		r.Consecutive5xx, r.BaseEjection = 2, 7*time.Second
		require.NoError(t, d.Reconfigure(context.Background(), r, 10*time.Second))
		require.Equal(t, 2, d.Report().Rules.Consecutive5xx)
		<-time.After(100 * time.Millisecond)
		synctest.Wait()
		rep := d.Report()
		require.Len(t, rep.Ejected, 1, "the run of 3 is over the new threshold")
		require.Equal(t, hs[1].URL(), rep.Ejected[0].URL)
		require.Equal(t, 7*time.Second, rep.Ejected[0].Until.Sub(rep.Ejected[0].Since), "the new base ejection")
	})
}

func TestOutlierReconfigureIntervalMovesTheWindowsEnd(t *testing.T) {
	cases := []struct {
		name     string
		interval time.Duration // set 4.45s into a 60s window, between two polls
		ejectBy  time.Duration // from the window's start
	}{
		{"the window ends at its start plus the new interval", 5 * time.Second, 5100 * time.Millisecond},
		{"already past: it ends at the next poll", 3 * time.Second, 4600 * time.Millisecond},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				set, hs := outlierBackends(t, 5)
				start := time.Now()
				d := startDetector(t, set, nil, func(oc *OutlierConfig) { oc.Interval = time.Minute })
				for range 4 { // hs[2] fails a third of its requests, never 5 in a row
					for i, h := range hs {
						for k := range 40 {
							o := backendactor.Success
							if i == 2 && k%3 == 0 {
								o = backendactor.ServerError
							}
							serve(t, h, 1, o)
						}
					}
					<-time.After(time.Second)
				}
				<-time.After(start.Add(4450 * time.Millisecond).Sub(time.Now()))
				require.NoError(t, d.Reconfigure(context.Background(), rules, c.interval))
				require.Equal(t, c.interval.String(), d.Report().Rules.Interval)
				<-time.After(start.Add(c.ejectBy - 200*time.Millisecond).Sub(time.Now()))
				synctest.Wait()
				require.Empty(t, d.Report().Ejected, "not before the window's new end")
				<-time.After(200 * time.Millisecond)
				synctest.Wait()
				rep := d.Report()
				require.Len(t, rep.Ejected, 1)
				require.Equal(t, ReasonSuccessRate, rep.Ejected[0].Reason)
			})
		})
	}
}

func TestOutlierReconfigurePollFollowsAShortInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		set, hs := outlierBackends(t, 3)
		d := startDetector(t, set, nil, nil) // poll 100ms
		require.NoError(t, d.Reconfigure(context.Background(), rules, 40*time.Millisecond))
		<-time.After(5 * time.Millisecond)
		served := time.Now()
		serve(t, hs[0], 5, backendactor.ServerError)
		<-time.After(50 * time.Millisecond)
		synctest.Wait()
		rep := d.Report()
		require.Len(t, rep.Ejected, 1, "seen within one 40ms poll, not the 100ms one")
		require.LessOrEqual(t, rep.Ejected[0].Since.Sub(served), 40*time.Millisecond)
	})
}

func TestOutlierReconfigureRefusesWhatItCannotRun(t *testing.T) {
	cases := []struct {
		name     string
		mut      func(*OutlierRules)
		interval time.Duration
		want     string
	}{
		{"interval", func(*OutlierRules) {}, 0, "interval must be positive"},
		{"base", func(r *OutlierRules) { r.BaseEjection = 0 }, time.Second, "base ejection"},
		{"max", func(r *OutlierRules) { r.MaxEjection = time.Millisecond }, time.Second, "below the base"},
		{"percent", func(r *OutlierRules) { r.MaxEjectionPercent = -1 }, time.Second, "percent"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				set, _ := outlierBackends(t, 2)
				d := startDetector(t, set, nil, nil)
				r := rules
				c.mut(&r)
				require.ErrorContains(t, d.Reconfigure(context.Background(), r, c.interval), c.want)
				require.Equal(t, "10s", d.Report().Rules.Interval, "nothing changed")
			})
		})
	}
}

func TestOutlierDetectorsOfTwoPoolsShareTheMetric(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		actors := actor.NewRegistry()
		var ds []*OutlierDetector
		var bad []*backendactor.Handle
		for _, pool := range []string{"", "api"} {
			set, hs := outlierBackends(t, 3) // the same URLs in both pools
			name := ""
			if pool != "" {
				name = "outlier-detector:" + pool
			}
			c := OutlierConfig{Rules: rules, Interval: 10 * time.Second, Backends: set.get, Registerer: reg,
				Logger: quietLog, Registry: actors, Name: name, Pool: pool}
			d, err := NewOutlierDetector(c)
			require.NoError(t, err)
			ds = append(ds, d)
			bad = append(bad, hs[1])
		}
		var names []string
		for _, r := range actors.Refs() {
			names = append(names, r.Name())
		}
		require.Equal(t, []string{"outlier-detector", "outlier-detector:api"}, names)
		serve(t, bad[1], 5, backendactor.ServerError)
		<-time.After(150 * time.Millisecond)
		synctest.Wait()
		require.Equal(t, 1.0, counterValue(t, reg, "lbd_outlier_ejections_total", "pool", "api", "backend", bad[1].URL()))
		require.Zero(t, counterValue(t, reg, "lbd_outlier_ejections_total", "pool", "default", "backend", bad[0].URL()), "the same URL in the other pool")

		require.NoError(t, ds[1].Stop(context.Background()))
		require.Zero(t, counterValue(t, reg, "lbd_outlier_ejections_total", "pool", "default", "backend", bad[0].URL()))
		mfs, err := reg.Gather()
		require.NoError(t, err)
		require.Len(t, mfs[0].GetMetric(), 3, "only the default pool's series are left")
		require.NoError(t, ds[0].Stop(context.Background()))
	})
}
