package controller

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"
)

// Ejection reasons, as /admin/outliers and the logs name them.
const (
	ReasonConsecutive5xx     = "consecutive_5xx"
	ReasonConsecutiveGateway = "consecutive_gateway_failure"
	ReasonSuccessRate        = "success_rate"
)

// OutlierRules are the outlier detector's thresholds (config section
// "outlier"), after Envoy's outlier detection:
//
//   - consecutive 5xx: a backend whose current run of failures (5xx
//     responses, and connect errors, resets and timeouts, which would have
//     made lbd answer 5xx itself) reaches Consecutive5xx is ejected;
//   - consecutive gateway failures: the same for a run of ConsecutiveGateway
//     failures in which the backend did not answer at all;
//   - success rate: at the end of each interval, over the backends that
//     served at least SuccessRateVolume requests in it — when there are at
//     least SuccessRateMinHosts of them — a backend whose success rate is
//     below mean - SuccessRateStdevFactor x stdev (population standard
//     deviation) is ejected. One outlier among n equal backends lies
//     sqrt(n-1) standard deviations below the mean, so with the default
//     factor 1.9 this rule can only fire from five backends on (Envoy's
//     default minimum); with fewer, the consecutive rules do the work.
//
// An ejection lasts BaseEjection x the backend's multiplier, capped at
// MaxEjection. The multiplier grows by one with each ejection and shrinks by
// one for each interval the backend then stays in (Forgive), so a backend
// that keeps failing is kept out longer and longer, and one that recovered
// is forgiven over time.
//
// MaxEjectionPercent caps the share of backends ejected at once (draining
// backends are not counted): floor(n x percent / 100), but at least one
// when there are two backends or more and the percent is positive, as in
// Envoy. With the default 50 a lone backend is never ejected, two or three
// allow one, four allow two: a bad day never ejects every backend unless
// the percent is 100.
type OutlierRules struct {
	Consecutive5xx         int
	ConsecutiveGateway     int
	BaseEjection           time.Duration
	MaxEjection            time.Duration
	MaxEjectionPercent     int
	SuccessRateMinHosts    int
	SuccessRateVolume      int
	SuccessRateStdevFactor float64
}

// OutlierStats are one backend's figures for one decision.
type OutlierStats struct {
	URL                string
	Consecutive5xx     int64
	ConsecutiveGateway int64
	// Requests and Failures are counted over the success-rate window that
	// just closed (read only when Observation.SuccessRate is set).
	Requests, Failures uint64
	// Draining backends are out of the arithmetic: the operator took them out.
	Draining bool
	// Ejected says the backend's actor still shows it ejected. An ejection
	// ends by the detector's clock a little before the actor, on its next
	// tick, takes the backend back; until it has, the backend counts as
	// ejected, or the cap would let one more go out than it allows.
	Ejected bool
}

// Observation is what the detector saw at one moment.
type Observation struct {
	Backends []OutlierStats
	// SuccessRate is set when a success-rate window closed at this moment.
	SuccessRate bool
}

// OutlierHistory is what the detector remembers of one backend.
type OutlierHistory struct {
	Ejections  int // since the backend was added
	Multiplier int // the next ejection lasts Base x (Multiplier+1)
	Since      time.Time
	Until      time.Time // the last ejection's end
	Reason     string
	Detail     string
}

// Ejected reports whether the backend is ejected at now.
func (h OutlierHistory) Ejected(now time.Time) bool { return now.Before(h.Until) }

// Ejection is one decision to eject a backend.
type Ejection struct {
	URL        string
	Reason     string
	Detail     string
	Since      time.Time
	Until      time.Time
	Count      int // the backend's ejections, this one included
	Multiplier int
}

// MaxEjected is how many of n backends may be ejected at once.
func (r OutlierRules) MaxEjected(n int) int {
	if n <= 0 || r.MaxEjectionPercent <= 0 {
		return 0
	}
	k := n * r.MaxEjectionPercent / 100
	if k == 0 && n >= 2 {
		k = 1
	}
	return k
}

type outlierCandidate struct {
	s      OutlierStats
	reason string
	detail string
	rate   float64 // success rate, for the order among success-rate candidates
}

// Decide returns the ejections due at now: consecutive-failure candidates
// first (in the order given), then success-rate ones (lowest rate first),
// while the max_ejection_percent cap allows. A backend that is ejected
// already is not a candidate.
func (r OutlierRules) Decide(obs Observation, hist map[string]OutlierHistory, now time.Time) []Ejection {
	var in []OutlierStats
	ejected := 0
	for _, s := range obs.Backends {
		if s.Draining {
			continue
		}
		in = append(in, s)
		if hist[s.URL].Ejected(now) || s.Ejected {
			ejected++
		}
	}
	room := r.MaxEjected(len(in)) - ejected
	if room <= 0 {
		return nil
	}
	var cands []outlierCandidate
	for _, s := range in {
		switch {
		case hist[s.URL].Ejected(now) || s.Ejected:
		case r.ConsecutiveGateway > 0 && s.ConsecutiveGateway >= int64(r.ConsecutiveGateway):
			cands = append(cands, outlierCandidate{s: s, reason: ReasonConsecutiveGateway,
				detail: fmt.Sprintf("%d consecutive gateway failures (connect errors, resets, timeouts)", s.ConsecutiveGateway)})
		case r.Consecutive5xx > 0 && s.Consecutive5xx >= int64(r.Consecutive5xx):
			cands = append(cands, outlierCandidate{s: s, reason: ReasonConsecutive5xx,
				detail: fmt.Sprintf("%d consecutive 5xx or gateway failures", s.Consecutive5xx)})
		}
	}
	if obs.SuccessRate {
		cands = append(cands, r.successRateOutliers(in, cands, hist, now)...)
	}
	var out []Ejection
	for _, c := range cands {
		if len(out) == room {
			break
		}
		h := hist[c.s.URL]
		m := h.Multiplier + 1
		d := time.Duration(m) * r.BaseEjection
		if r.MaxEjection > 0 && (d > r.MaxEjection || d/time.Duration(m) != r.BaseEjection) {
			d = r.MaxEjection
		}
		out = append(out, Ejection{URL: c.s.URL, Reason: c.reason, Detail: c.detail,
			Since: now, Until: now.Add(d), Count: h.Ejections + 1, Multiplier: m})
	}
	return out
}

// successRateOutliers applies the success-rate rule to the backends that
// are not ejected, not candidates already and served enough requests.
func (r OutlierRules) successRateOutliers(in []OutlierStats, already []outlierCandidate, hist map[string]OutlierHistory, now time.Time) []outlierCandidate {
	type rated struct {
		s    OutlierStats
		rate float64
	}
	var rs []rated
	for _, s := range in {
		taken := slices.ContainsFunc(already, func(c outlierCandidate) bool { return c.s.URL == s.URL })
		if taken || hist[s.URL].Ejected(now) || s.Ejected || s.Requests == 0 || s.Requests < uint64(max(r.SuccessRateVolume, 1)) {
			continue
		}
		ok := s.Requests - min(s.Failures, s.Requests)
		rs = append(rs, rated{s, 100 * float64(ok) / float64(s.Requests)})
	}
	if len(rs) == 0 || len(rs) < r.SuccessRateMinHosts {
		return nil
	}
	var sum float64
	for _, x := range rs {
		sum += x.rate
	}
	mean := sum / float64(len(rs))
	var sq float64
	for _, x := range rs {
		sq += (x.rate - mean) * (x.rate - mean)
	}
	stdev := math.Sqrt(sq / float64(len(rs)))
	threshold := mean - r.SuccessRateStdevFactor*stdev
	var out []outlierCandidate
	for _, x := range rs {
		if x.rate < threshold {
			out = append(out, outlierCandidate{s: x.s, reason: ReasonSuccessRate, rate: x.rate,
				detail: fmt.Sprintf("success rate %.1f%% below %.1f%% (mean %.1f%% - %.1f x stdev %.1f%%, %d backends)",
					x.rate, threshold, mean, r.SuccessRateStdevFactor, stdev, len(rs))})
		}
	}
	slices.SortStableFunc(out, func(a, b outlierCandidate) int { return cmp.Compare(a.rate, b.rate) })
	return out
}

// Record returns the history after ej.
func (h OutlierHistory) Record(ej Ejection) OutlierHistory {
	return OutlierHistory{Ejections: ej.Count, Multiplier: ej.Multiplier, Since: ej.Since, Until: ej.Until,
		Reason: ej.Reason, Detail: ej.Detail}
}

// Forgive is applied when a success-rate interval closes at now: a backend
// that has been back in service for the whole interval has its multiplier
// lowered by one.
func (h OutlierHistory) Forgive(now time.Time, interval time.Duration) OutlierHistory {
	if h.Multiplier > 0 && !h.Until.After(now.Add(-interval)) {
		h.Multiplier--
	}
	return h
}
