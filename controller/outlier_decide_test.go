package controller

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var (
	now0  = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	rules = OutlierRules{
		Consecutive5xx: 5, ConsecutiveGateway: 5, BaseEjection: 30 * time.Second, MaxEjection: 5 * time.Minute,
		MaxEjectionPercent: 50, SuccessRateMinHosts: 3, SuccessRateVolume: 100, SuccessRateStdevFactor: 1.9,
	}
)

// fleet makes n healthy backends a, b, c...
func fleet(n int) []OutlierStats {
	out := make([]OutlierStats, n)
	for i := range out {
		out[i] = OutlierStats{URL: string(rune('a' + i))}
	}
	return out
}

// with applies f to the backend at index i of a copy of bs.
func with(bs []OutlierStats, f func(*OutlierStats), idx ...int) []OutlierStats {
	out := append([]OutlierStats(nil), bs...)
	for _, i := range idx {
		f(&out[i])
	}
	return out
}

func fiveXX(n int64) func(*OutlierStats) { return func(s *OutlierStats) { s.Consecutive5xx = n } }
func gateway(n int64) func(*OutlierStats) {
	return func(s *OutlierStats) { s.Consecutive5xx, s.ConsecutiveGateway = n, n }
}
func served(req, fail uint64) func(*OutlierStats) {
	return func(s *OutlierStats) { s.Requests, s.Failures = req, fail }
}
func draining(s *OutlierStats)     { s.Draining = true }
func stillEjected(s *OutlierStats) { s.Ejected = true }

func TestDecide(t *testing.T) {
	ejectedUntil := func(d time.Duration) OutlierHistory {
		return OutlierHistory{Ejections: 1, Multiplier: 1, Since: now0.Add(-time.Second), Until: now0.Add(d)}
	}
	all := func(bs []OutlierStats, f func(*OutlierStats)) []OutlierStats {
		for i := range bs {
			f(&bs[i])
		}
		return bs
	}
	type want struct {
		url, reason string
		until       time.Duration
		count       int
	}
	cases := []struct {
		name string
		obs  Observation
		hist map[string]OutlierHistory
		r    func(*OutlierRules)
		want []want
	}{
		{name: "all well", obs: Observation{Backends: fleet(4), SuccessRate: true}},
		{name: "a run below the threshold", obs: Observation{Backends: with(fleet(4), fiveXX(4), 1)}},
		{name: "consecutive 5xx", obs: Observation{Backends: with(fleet(4), fiveXX(5), 1)},
			want: []want{{"b", ReasonConsecutive5xx, 30 * time.Second, 1}}},
		{name: "gateway failures name the more precise reason", obs: Observation{Backends: with(fleet(4), gateway(7), 2)},
			want: []want{{"c", ReasonConsecutiveGateway, 30 * time.Second, 1}}},
		{name: "a rule set to 0 is off", obs: Observation{Backends: with(fleet(4), gateway(7), 2)},
			r:    func(r *OutlierRules) { r.ConsecutiveGateway = 0 },
			want: []want{{"c", ReasonConsecutive5xx, 30 * time.Second, 1}}},
		{name: "an ejected backend is not ejected again", obs: Observation{Backends: with(fleet(4), fiveXX(9), 0)},
			hist: map[string]OutlierHistory{"a": ejectedUntil(time.Second)}},
		// The detector's clock passed a and b's ejections, their actors have
		// not ended them yet: they still fill the cap of 2 of 4.
		{name: "an ejection its actor has not ended yet still counts",
			obs:  Observation{Backends: with(with(fleet(4), fiveXX(9), 2), func(s *OutlierStats) { s.Ejected = true }, 0, 1)},
			hist: map[string]OutlierHistory{"a": ejectedUntil(-time.Millisecond), "b": ejectedUntil(-time.Millisecond)}},
		{name: "an ejection that ended leaves the multiplier: twice as long",
			obs:  Observation{Backends: with(fleet(4), fiveXX(5), 0)},
			hist: map[string]OutlierHistory{"a": ejectedUntil(-time.Second)},
			want: []want{{"a", ReasonConsecutive5xx, time.Minute, 2}}},
		{name: "capped at max_ejection", obs: Observation{Backends: with(fleet(4), fiveXX(5), 0)},
			hist: map[string]OutlierHistory{"a": {Ejections: 30, Multiplier: 30}},
			want: []want{{"a", ReasonConsecutive5xx, 5 * time.Minute, 31}}},
		{name: "a multiplier that would overflow is capped too", obs: Observation{Backends: with(fleet(4), fiveXX(5), 0)},
			hist: map[string]OutlierHistory{"a": {Multiplier: 1 << 40}},
			want: []want{{"a", ReasonConsecutive5xx, 5 * time.Minute, 1}}},
		{name: "3 of 4 failing, 50%: two", obs: Observation{Backends: with(fleet(4), fiveXX(5), 0, 1, 2)},
			want: []want{{"a", ReasonConsecutive5xx, 30 * time.Second, 1}, {"b", ReasonConsecutive5xx, 30 * time.Second, 1}}},
		{name: "one ejected already counts against the cap", obs: Observation{Backends: with(fleet(4), fiveXX(5), 1, 2, 3)},
			hist: map[string]OutlierHistory{"a": ejectedUntil(10 * time.Second)},
			want: []want{{"b", ReasonConsecutive5xx, 30 * time.Second, 1}}},
		{name: "the cap is reached: nobody", obs: Observation{Backends: with(fleet(4), fiveXX(5), 2, 3)},
			hist: map[string]OutlierHistory{"a": ejectedUntil(time.Second), "b": ejectedUntil(time.Second)}},
		{name: "an ejection over by the clock but not yet by its actor still counts",
			obs:  Observation{Backends: with(with(fleet(4), stillEjected, 0), fiveXX(5), 0, 1, 2)},
			hist: map[string]OutlierHistory{"a": ejectedUntil(-time.Millisecond), "b": ejectedUntil(time.Second)}},
		{name: "draining backends are out of the count", obs: Observation{Backends: with(with(fleet(4), draining, 0, 1), fiveXX(5), 2, 3)},
			want: []want{{"c", ReasonConsecutive5xx, 30 * time.Second, 1}}},
		{name: "a draining backend is never ejected", obs: Observation{Backends: with(with(fleet(4), draining, 0), fiveXX(5), 0)}},
		{name: "a lone backend is never ejected at 50%", obs: Observation{Backends: with(fleet(1), fiveXX(50), 0)}},
		{name: "... but is at 100%", obs: Observation{Backends: with(fleet(1), fiveXX(50), 0)},
			r:    func(r *OutlierRules) { r.MaxEjectionPercent = 100 },
			want: []want{{"a", ReasonConsecutive5xx, 30 * time.Second, 1}}},
		{name: "0% ejects nothing", obs: Observation{Backends: with(fleet(4), fiveXX(50), 0)},
			r: func(r *OutlierRules) { r.MaxEjectionPercent = 0 }},
		{name: "success rate: one bad among five", obs: Observation{SuccessRate: true,
			Backends: with(all(fleet(5), served(200, 0)), served(200, 60), 3)},
			want: []want{{"d", ReasonSuccessRate, 30 * time.Second, 1}}},
		{name: "success rate: one bad among four is within 1.9 stdev (sqrt 3)", obs: Observation{SuccessRate: true,
			Backends: with(all(fleet(4), served(200, 0)), served(200, 60), 3)}},
		{name: "success rate: a lower factor catches it", obs: Observation{SuccessRate: true,
			Backends: with(all(fleet(4), served(200, 0)), served(200, 60), 3)},
			r:    func(r *OutlierRules) { r.SuccessRateStdevFactor = 1.5 },
			want: []want{{"d", ReasonSuccessRate, 30 * time.Second, 1}}},
		{name: "success rate is evaluated only when its window closes", obs: Observation{
			Backends: with(all(fleet(5), served(200, 0)), served(200, 60), 3)}},
		{name: "success rate: backends under the request volume do not count", obs: Observation{SuccessRate: true,
			Backends: with(with(all(fleet(5), served(200, 0)), served(99, 0), 0, 1, 2), served(200, 60), 3)}},
		{name: "success rate: under the minimum of hosts, nothing", obs: Observation{SuccessRate: true,
			Backends: with(all(fleet(5), served(200, 0)), served(200, 60), 3)},
			r: func(r *OutlierRules) { r.SuccessRateMinHosts = 6 }},
		{name: "success rate: all equally bad is no outlier", obs: Observation{SuccessRate: true,
			Backends: all(fleet(5), served(200, 100))}},
		{name: "consecutive first, then the lowest success rate", obs: tenWithThreeBad(),
			r:    func(r *OutlierRules) { r.SuccessRateStdevFactor = 1 },
			want: []want{{"j", ReasonConsecutive5xx, 30 * time.Second, 1}, {"c", ReasonSuccessRate, 30 * time.Second, 1}, {"b", ReasonSuccessRate, 30 * time.Second, 1}}},
		{name: "... within the cap", obs: tenWithThreeBad(),
			r:    func(r *OutlierRules) { r.SuccessRateStdevFactor, r.MaxEjectionPercent = 1, 20 },
			want: []want{{"j", ReasonConsecutive5xx, 30 * time.Second, 1}, {"c", ReasonSuccessRate, 30 * time.Second, 1}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := rules
			if c.r != nil {
				c.r(&r)
			}
			var got []want
			for _, ej := range r.Decide(c.obs, c.hist, now0) {
				require.Equal(t, now0, ej.Since)
				require.NotEmpty(t, ej.Detail)
				got = append(got, want{ej.URL, ej.Reason, ej.Until.Sub(now0), ej.Count})
			}
			require.Equal(t, c.want, got)
		})
	}
}

// tenWithThreeBad: j fails in a row; of the other nine, b succeeds 65% of
// the time and c 40% (mean 89.4%, stdev 20.6%), the rest always.
func tenWithThreeBad() Observation {
	bs := fleet(10)
	for i := range bs {
		bs[i].Requests = 1000
	}
	bs[1].Failures, bs[2].Failures, bs[9].Consecutive5xx = 350, 600, 5
	return Observation{SuccessRate: true, Backends: bs}
}

func TestDecideExplainsASuccessRateEjection(t *testing.T) {
	obs := Observation{SuccessRate: true, Backends: with(with(fleet(5), served(200, 0), 0, 1, 2, 4), served(200, 60), 3)}
	ej := rules.Decide(obs, nil, now0)
	require.Len(t, ej, 1)
	require.Equal(t, "success rate 70.0% below 71.2% (mean 94.0% - 1.9 x stdev 12.0%, 5 backends)", ej[0].Detail)
}

func TestMaxEjected(t *testing.T) {
	cases := []struct{ n, pct, want int }{
		{0, 50, 0}, {1, 50, 0}, {2, 50, 1}, {3, 50, 1}, {4, 50, 2}, {5, 50, 2}, {10, 50, 5},
		{3, 10, 1}, {20, 10, 2}, {1, 100, 1}, {4, 100, 4}, {4, 0, 0},
	}
	for _, c := range cases {
		require.Equal(t, c.want, OutlierRules{MaxEjectionPercent: c.pct}.MaxEjected(c.n), fmt.Sprintf("%d backends at %d%%", c.n, c.pct))
	}
}

func TestForgive(t *testing.T) {
	const iv = 10 * time.Second
	h := OutlierHistory{Multiplier: 2, Until: now0}
	require.Equal(t, 2, h.Forgive(now0.Add(5*time.Second), iv).Multiplier, "back for less than an interval")
	h = h.Forgive(now0.Add(iv), iv)
	require.Equal(t, 1, h.Multiplier, "back for a whole interval")
	h = h.Forgive(now0.Add(2*iv), iv).Forgive(now0.Add(3*iv), iv)
	require.Zero(t, h.Multiplier, "never below zero")
	require.Equal(t, 2, OutlierHistory{Multiplier: 2, Until: now0.Add(time.Minute)}.Forgive(now0, iv).Multiplier, "still ejected")
}

func TestRecord(t *testing.T) {
	ej := Ejection{URL: "a", Reason: ReasonSuccessRate, Detail: "d", Since: now0, Until: now0.Add(time.Minute), Count: 3, Multiplier: 2}
	h := OutlierHistory{}.Record(ej)
	require.Equal(t, OutlierHistory{Ejections: 3, Multiplier: 2, Since: now0, Until: now0.Add(time.Minute), Reason: ReasonSuccessRate, Detail: "d"}, h)
	require.True(t, h.Ejected(now0.Add(59*time.Second)))
	require.False(t, h.Ejected(now0.Add(time.Minute)))
}
