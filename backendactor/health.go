package backendactor

import "time"

// Health is a backend's health as active probes judge it: it takes Rise good
// probes in a row to come up and Fall bad ones in a row to go down, so one
// lost probe neither ejects a good backend nor admits a bad one.
//
// A backend added at runtime while active checks run starts down and
// Pending: its very first probe decides alone (Envoy's rule for new hosts),
// so a backend that is not listening yet gets no traffic, and one that is
// comes up after one probe rather than Rise intervals. Only that first probe
// is special: if it fails, the backend needs Rise good probes like any other.
type Health struct {
	Up         bool
	Pending    bool // not probed yet since it was added
	Good, Bad  int  // current runs of good and bad probes
	LastProbe  time.Time
	LastDetail string
}

// Next returns the health after one probe result.
func (h Health) Next(ok bool, rise, fall int, at time.Time, detail string) Health {
	h.LastProbe, h.LastDetail = at, detail
	first := h.Pending
	h.Pending = false
	if ok {
		h.Good, h.Bad = h.Good+1, 0
		if !h.Up && (first || h.Good >= max(rise, 1)) {
			h.Up = true
		}
		return h
	}
	h.Good, h.Bad = 0, h.Bad+1
	if h.Up && h.Bad >= max(fall, 1) {
		h.Up = false
	}
	return h
}

// WarmupFactor is the share of its weight a backend gets at now when its
// warm-up started at start: a straight ramp from minPercent to 100% over d.
func WarmupFactor(start, now time.Time, d time.Duration, minPercent int) float64 {
	if d <= 0 || start.IsZero() {
		return 1
	}
	el := now.Sub(start)
	if el >= d {
		return 1
	}
	lo := float64(minPercent) / 100
	if el <= 0 {
		return lo
	}
	return lo + (1-lo)*float64(el)/float64(d)
}
