package controller

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// feed runs readings of level(t) through a Trend once a second from start
// for d and returns the final trend and the events with their times.
func feed(tr Trend, start time.Time, d time.Duration, level func(t time.Duration) float64) (Trend, []event) {
	var evs []event
	for t := time.Duration(0); t < d; t += time.Second {
		var ev TrendEvent
		tr, ev = tr.Observe(level(t), start.Add(t), AdvisoryRules{})
		if ev != NoChange {
			evs = append(evs, event{t, ev, tr})
		}
	}
	return tr, evs
}

type event struct {
	at    time.Duration
	ev    TrendEvent
	trend Trend
}

const base = 0.100 // 100 ms

func noisy(rng *rand.Rand, amplitude float64, level float64) float64 {
	return level * (1 + amplitude*(2*rng.Float64()-1))
}

func TestAdvisoryIgnoresNoiseAndRisesBelowThreshold(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	cases := []struct {
		name  string
		level func(rng *rand.Rand) func(time.Duration) float64
	}{
		{"noise of ±14% around a steady level", func(rng *rand.Rand) func(time.Duration) float64 {
			return func(time.Duration) float64 { return noisy(rng, 0.14, base) }
		}},
		{"a lasting 14% rise", func(*rand.Rand) func(time.Duration) float64 {
			return func(t time.Duration) float64 {
				if t > 10*time.Minute {
					return base * 1.14
				}
				return base
			}
		}},
		{"a 10% rise under ±10% noise", func(rng *rand.Rand) func(time.Duration) float64 {
			return func(t time.Duration) float64 {
				if t > 10*time.Minute {
					return noisy(rng, 0.10, base*1.10)
				}
				return noisy(rng, 0.10, base)
			}
		}},
		{"a short 40% spike (3s)", func(*rand.Rand) func(time.Duration) float64 {
			return func(t time.Duration) float64 {
				if t > 10*time.Minute && t <= 10*time.Minute+3*time.Second {
					return base * 1.4
				}
				return base
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for seed := range uint64(5) {
				_, evs := feed(Trend{}, t0, 40*time.Minute, c.level(rand.New(rand.NewPCG(seed, 1))))
				require.Empty(t, evs, "seed %d", seed)
			}
		})
	}
}

func TestAdvisoryWarnsOnATwentyPercentRise(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	for seed := range uint64(5) {
		rng := rand.New(rand.NewPCG(seed, 2))
		rise := 15 * time.Minute
		tr, evs := feed(Trend{}, t0, 25*time.Minute, func(t time.Duration) float64 {
			if t >= rise {
				return noisy(rng, 0.05, base*1.2)
			}
			return noisy(rng, 0.05, base)
		})
		require.Len(t, evs, 1, "seed %d: one warning, held while the rise lasts", seed)
		require.Equal(t, Warned, evs[0].ev)
		require.Less(t, evs[0].at-rise, time.Minute, "seed %d: warned within a minute of the rise", seed)
		require.InDelta(t, base, evs[0].trend.Baseline, base*0.02, "the baseline did not chase the rise")
		require.True(t, tr.Warning)
		require.Equal(t, evs[0].trend.Baseline, tr.Baseline, "frozen while warning")
		require.InDelta(t, 20, tr.Rise()*100, 3)
	}
}

func TestAdvisoryClearsRelearnsAndLearnsFirst(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	t.Run("clears when latency comes back", func(t *testing.T) {
		_, evs := feed(Trend{}, t0, 30*time.Minute, func(t time.Duration) float64 {
			if t >= 10*time.Minute && t < 15*time.Minute {
				return base * 1.3
			}
			return base
		})
		require.Len(t, evs, 2)
		require.Equal(t, Warned, evs[0].ev)
		require.Equal(t, Cleared, evs[1].ev)
		require.InDelta(t, 15*time.Minute, evs[1].at, float64(time.Minute))
	})
	t.Run("a rise that lasts Relearn becomes the baseline", func(t *testing.T) {
		tr, evs := feed(Trend{}, t0, 50*time.Minute, func(t time.Duration) float64 {
			if t >= 10*time.Minute {
				return base * 1.3
			}
			return base
		})
		require.Len(t, evs, 2)
		require.Equal(t, Warned, evs[0].ev)
		require.Equal(t, Relearned, evs[1].ev)
		require.Equal(t, 30*time.Minute, evs[1].at-evs[0].at)
		require.False(t, tr.Warning)
		require.InDelta(t, base*1.3, tr.Baseline, base*0.01)
	})
	t.Run("no verdict while the baseline is being learned", func(t *testing.T) {
		tr, evs := feed(Trend{}, t0, 50*time.Second, func(t time.Duration) float64 {
			if t >= 20*time.Second {
				return base * 2
			}
			return base
		})
		require.Empty(t, evs)
		require.True(t, tr.Learning(t0.Add(50*time.Second), AdvisoryRules{}))
	})
}

// lockedBuffer is a log sink the actor writes and the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestAdvisoryActorWarnsForTheSlowBackendOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := "http://127.0.0.1:8081", "http://127.0.0.1:8082"
		var slowA atomic.Bool
		src := func() []Reading {
			la := 100 * time.Millisecond
			if slowA.Load() {
				la = 120 * time.Millisecond
			}
			return []Reading{
				{Backend: a, Latency: la, Eligible: true},
				{Backend: b, Latency: 50 * time.Millisecond, Eligible: true},
				{Backend: "http://127.0.0.1:8083", Eligible: true}, // no traffic yet: no reading
			}
		}
		var logs lockedBuffer
		adv := NewAdvisory(AdvisoryConfig{Source: src, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(adv)

		<-time.After(10 * time.Minute)
		synctest.Wait()
		r := adv.Report()
		require.False(t, r.Warning)
		require.False(t, r.Overall.Learning)
		require.InDelta(t, 75, r.Overall.BaselineMs, 0.5)
		require.Len(t, r.Backends, 2)

		slowA.Store(true) // +20% on a; overall (100+50)/2 -> (120+50)/2 is +13%
		<-time.After(time.Minute)
		synctest.Wait()
		r = adv.Report()
		require.True(t, r.Warning)
		require.False(t, r.Overall.Warning, "the mean rose 13%%: below the threshold")
		require.Equal(t, a, r.Backends[0].Backend)
		require.True(t, r.Backends[0].Warning)
		require.InDelta(t, 100, r.Backends[0].BaselineMs, 1)
		require.InDelta(t, 20, r.Backends[0].RisePercent, 1)
		require.NotEmpty(t, r.Backends[0].Advice)
		require.False(t, r.Backends[1].Warning)
		require.Contains(t, logs.String(), `"msg":"scaling advisory: latency above baseline","backend":"`+a+`"`)

		require.Equal(t, 1.0, testutil.ToFloat64(gaugeOf(t, reg, "lbd_advisory_warning", a)))
		require.Equal(t, 0.0, testutil.ToFloat64(gaugeOf(t, reg, "lbd_advisory_warning", b)))
		require.Equal(t, 0.0, testutil.ToFloat64(gaugeOf(t, reg, "lbd_advisory_warning", OverallSeries)))
		problems, err := testutil.GatherAndLint(reg)
		require.NoError(t, err)
		require.Empty(t, problems)

		require.NoError(t, adv.Stop(context.Background()))
	})
}

// gaugeOf returns a collector holding the one gathered gauge with the backend label.
func gaugeOf(t *testing.T, g prometheus.Gatherer, name, backend string) prometheus.Collector {
	t.Helper()
	mfs, err := g.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label(m, "backend") == backend {
				return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: strings.TrimPrefix(name, "lbd_"), Help: "copy"},
					func() float64 { return m.GetGauge().GetValue() })
			}
		}
	}
	t.Fatalf("no %s{backend=%q}", name, backend)
	return nil
}
