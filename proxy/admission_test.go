package proxy

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// fakeLimit is a SoftLimit with a fixed limit that records what it is told.
type fakeLimit struct {
	limit              atomic.Int64
	admitted, rejected atomic.Int64
	peak               atomic.Int64
	observed, failed   atomic.Int64
	lastLatency        atomic.Int64
}

func (f *fakeLimit) Limit() int64 { return f.limit.Load() }
func (f *fakeLimit) Admitted(n int64) {
	f.admitted.Add(1)
	f.peak.Store(max(f.peak.Load(), n))
}
func (f *fakeLimit) Rejected() { f.rejected.Add(1) }
func (f *fakeLimit) Observe(d time.Duration, failed bool) {
	f.observed.Add(1)
	f.lastLatency.Store(int64(d))
	if failed {
		f.failed.Add(1)
	}
}

type verdict struct {
	ok     bool
	reason string
	status int
	after  time.Duration
}

func admit(a *Admission, client string) verdict {
	v, _ := admitT(a, client)
	return v
}

// admitT is admit with the ticket of an admitted request.
func admitT(a *Admission, client string) (verdict, Ticket) {
	t, reason, status, after := a.Admit(nil, client)
	return verdict{t != nil, reason, status, after}, t
}

// held admits n requests that must be admitted and returns their tickets.
func held(t *testing.T, a *Admission, n int) []Ticket {
	t.Helper()
	var ts []Ticket
	for range n {
		v, tk := admitT(a, "c")
		require.Equal(t, admitted, v)
		ts = append(ts, tk)
	}
	return ts
}

var (
	admitted   = verdict{ok: true}
	overloaded = verdict{false, RejectOverload, http.StatusServiceUnavailable, time.Second}
)

func TestHardCapRefusesBeyondMaxInflight(t *testing.T) {
	a := NewAdmission(AdmissionOptions{MaxInflight: 2})
	ts := held(t, a, 2)
	require.Equal(t, overloaded, admit(a, "c"), "third request over the cap of 2")
	require.EqualValues(t, 2, a.Status().Inflight, "a refusal leaves no trace")
	ts[0].Done(time.Millisecond, false)
	require.Equal(t, admitted, admit(a, "c"), "a finished request frees its place")
	s := a.Status()
	require.EqualValues(t, 3, s.Admitted)
	require.EqualValues(t, 1, s.RejectedOverload)
	require.False(t, s.Adaptive)
	require.EqualValues(t, 2, s.Limit)
}

func TestSoftLimitRefusesBelowTheHardCap(t *testing.T) {
	f := &fakeLimit{}
	f.limit.Store(2)
	a := NewAdmission(AdmissionOptions{MaxInflight: 10, Limit: f})
	ts := held(t, a, 2)
	require.Equal(t, overloaded, admit(a, "c"))
	require.EqualValues(t, 2, f.admitted.Load())
	require.EqualValues(t, 2, f.peak.Load(), "the limiter learns the in-flight peak")
	require.EqualValues(t, 1, f.rejected.Load())
	require.EqualValues(t, 2, a.Status().Limit)

	ts[0].Done(30*time.Millisecond, false)
	ts[1].Done(80*time.Millisecond, true)
	require.EqualValues(t, 2, f.observed.Load())
	require.EqualValues(t, 1, f.failed.Load())
	require.EqualValues(t, 80*time.Millisecond, f.lastLatency.Load())

	f.limit.Store(50) // the soft limit above the hard cap: the hard cap rules
	require.EqualValues(t, 10, a.Status().Limit)
	for range 10 {
		require.Equal(t, admitted, admit(a, "c"))
	}
	require.Equal(t, overloaded, admit(a, "c"))
	require.EqualValues(t, 1, f.rejected.Load(), "refused by the hard cap, not the soft limit")
}

func TestRateLimitComesFirstAndSaysWhenToComeBack(t *testing.T) {
	now := t0
	a := NewAdmission(AdmissionOptions{
		MaxInflight: 100, RatePerClient: 0.5, BurstPerClient: 1, Now: func() time.Time { return now },
	})
	require.Equal(t, admitted, admit(a, "203.0.113.1"))
	require.Equal(t, verdict{false, RejectRateLimit, http.StatusTooManyRequests, 2 * time.Second}, admit(a, "203.0.113.1"))
	require.Equal(t, admitted, admit(a, "203.0.113.2"), "another client")
	now = now.Add(time.Second)
	require.Equal(t, verdict{false, RejectRateLimit, http.StatusTooManyRequests, time.Second}, admit(a, "203.0.113.1"))
	now = now.Add(time.Second)
	require.Equal(t, admitted, admit(a, "203.0.113.1"))
	s := a.Status()
	require.EqualValues(t, 2, s.RejectedRateLimit)
	require.EqualValues(t, 2, s.Clients)
	require.EqualValues(t, 3, s.Inflight, "rate-limited requests never counted in flight")
}

func TestAdmissionGauges(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := &fakeLimit{}
	f.limit.Store(7)
	a := NewAdmission(AdmissionOptions{MaxInflight: 100, Limit: f, Registerer: reg})
	admit(a, "c")
	admit(a, "c")
	families, err := reg.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, mf := range families {
		got[mf.GetName()] = mf.GetMetric()[0].GetGauge().GetValue()
	}
	require.Equal(t, map[string]float64{"lbd_admission_limit": 7, "lbd_admission_inflight": 2}, got)
}

func TestRejectHeaders(t *testing.T) {
	for _, c := range []struct {
		status int
		reason string
		after  time.Duration
		want   string
	}{
		{http.StatusTooManyRequests, RejectRateLimit, 200 * time.Millisecond, "1"},
		{http.StatusTooManyRequests, RejectRateLimit, 2500 * time.Millisecond, "3"},
		{http.StatusServiceUnavailable, RejectOverload, time.Second, "1"},
	} {
		rec := newRecorder()
		st := &reqState{ResponseWriter: rec}
		st.reject(c.status, c.reason, c.after)
		require.Equal(t, c.status, rec.code)
		require.Equal(t, c.reason, rec.Header().Get("X-Lbd-Reject"))
		require.Equal(t, c.want, rec.Header().Get("Retry-After"), "whole seconds, rounded up")
	}
}

func TestOnlyUpstreamFailuresCountForTheLimit(t *testing.T) {
	for _, c := range []struct {
		st   *reqState
		want bool
	}{
		{&reqState{status: http.StatusOK}, false},
		{&reqState{status: http.StatusBadGateway}, true},
		{&reqState{status: http.StatusGatewayTimeout}, true},
		{&reqState{status: http.StatusInternalServerError}, true},
		{&reqState{status: http.StatusServiceUnavailable, rejected: RejectNoBackend}, false},
		{&reqState{status: http.StatusRequestEntityTooLarge, rejected: RejectBodyTooLarge}, false},
	} {
		require.Equal(t, c.want, c.st.failedUpstream(), "%d %q", c.st.status, c.st.rejected)
	}
}

// Requests still receiving their body hold a place under the hard cap but
// not under the adaptive limit: slow uploads cannot lock everyone out of a
// low limit, and the limit's peak is what it governs.
func TestUploadsCountForTheHardCapOnly(t *testing.T) {
	lim := &fakeLimit{}
	lim.limit.Store(2)
	a := NewAdmission(AdmissionOptions{MaxInflight: 5, Limit: lim})
	var uploads []Ticket
	for range 3 { // each is admitted like any request, then streams its body
		tk := held(t, a, 1)[0]
		tk.Upload(true)
		uploads = append(uploads, tk)
	}
	require.EqualValues(t, 3, a.Status().Uploading)
	held(t, a, 2) // the adaptive limit of 2 is theirs: the uploads are outside it
	require.EqualValues(t, 2, lim.peak.Load(), "the limit saw what it governs")
	require.Equal(t, overloaded, admit(a, "c"), "the hard cap counts everything: 3 uploading + 2")

	uploads[0].Upload(false) // as leaveAdmission does for a request whose answer came first
	uploads[0].Done(time.Millisecond, false)
	require.Equal(t, overloaded, admit(a, "c"), "under the hard cap again, but the limit of 2 binds")
	uploads[1].Upload(false) // its body ended: it counts for the limit now
	require.EqualValues(t, 1, a.Status().Uploading)
	require.Equal(t, overloaded, admit(a, "c"))
}
