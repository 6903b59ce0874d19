package proxy

import (
	"fmt"
	"math"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestReconfigureMaxInflight(t *testing.T) {
	cases := []struct {
		name       string
		from, to   int
		held       int
		admitted   int // further admissions right after the change
		afterFinsh int // further admissions after every held request finished
	}{
		{"lowered under the requests in flight: none is cut, none admitted", 10, 2, 5, 0, 2},
		{"raised: room at once", 2, 4, 2, 2, 4},
		{"removed", 2, 0, 2, 50, 50},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := NewAdmission(AdmissionOptions{MaxInflight: c.from})
			ts := held(t, a, c.held)
			require.NoError(t, a.Reconfigure(AdmissionOptions{MaxInflight: c.to}))
			require.EqualValues(t, c.to, a.Status().MaxInflight)
			more := admitUpTo(a, 50)
			require.Len(t, more, c.admitted)
			for _, tk := range append(ts, more...) {
				tk.Done(time.Millisecond, false)
			}
			require.Zero(t, a.Status().Inflight)
			require.Len(t, admitUpTo(a, 50), c.afterFinsh)
		})
	}
}

// admitUpTo admits until the first refusal or n admissions.
func admitUpTo(a *Admission, n int) []Ticket {
	var ts []Ticket
	for range n {
		v, tk := admitT(a, "c")
		if !v.ok {
			break
		}
		ts = append(ts, tk)
	}
	return ts
}

func TestReconfigureSoftLimitDoneGoesToTheLimitThatAdmitted(t *testing.T) {
	newLimit := func(n int64) *fakeLimit {
		f := &fakeLimit{}
		f.limit.Store(n)
		return f
	}
	cases := []struct {
		name     string
		from, to *fakeLimit
	}{
		{"none to a limiter", nil, newLimit(3)},
		{"a limiter to none", newLimit(3), nil},
		{"a limiter to another", newLimit(3), newLimit(5)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := func(f *fakeLimit) AdmissionOptions {
				o := AdmissionOptions{MaxInflight: 100}
				if f != nil {
					o.Limit = f
				}
				return o
			}
			a := NewAdmission(opts(c.from))
			before := held(t, a, 2)
			require.NoError(t, a.Reconfigure(opts(c.to)))
			require.Equal(t, c.to != nil, a.Status().Adaptive)
			after := held(t, a, 1)
			if c.to != nil {
				require.EqualValues(t, 3, c.to.peak.Load(), "the new limit counts every request in flight")
			}
			for _, tk := range before {
				tk.Done(10*time.Millisecond, true)
			}
			after[0].Done(20*time.Millisecond, false)
			require.Zero(t, a.Status().Inflight)
			if c.from != nil {
				require.EqualValues(t, 2, c.from.admitted.Load())
				require.EqualValues(t, 2, c.from.observed.Load(), "the old limit hears of the requests it admitted")
				require.EqualValues(t, 2, c.from.failed.Load())
			}
			if c.to != nil {
				require.EqualValues(t, 1, c.to.admitted.Load())
				require.EqualValues(t, 1, c.to.observed.Load(), "and the new one of its own only")
				require.Zero(t, c.to.failed.Load())
			}
		})
	}
}

func TestReconfigureUnderLoadLosesNoRequest(t *testing.T) {
	limits := []*fakeLimit{{}, {}, {}}
	for _, f := range limits {
		f.limit.Store(1 << 20)
	}
	a := NewAdmission(AdmissionOptions{MaxInflight: 1 << 20, RatePerClient: 1e9, BurstPerClient: 1 << 20})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			client := fmt.Sprint("client-", w%3)
			var open []Ticket
			for i := range 3000 {
				v, tk := admitT(a, client)
				if !v.ok {
					t.Errorf("refused %+v", v)
					return
				}
				open = append(open, tk)
				if i%3 == 2 { // a few stay open across the swaps
					for _, x := range open {
						x.Done(time.Millisecond, false)
					}
					open = open[:0]
				}
			}
			for _, x := range open {
				x.Done(time.Millisecond, false)
			}
		})
	}
	for i := range 300 {
		o := AdmissionOptions{MaxInflight: 1<<20 - i%2, RatePerClient: 1e9, BurstPerClient: 1<<20 - i%3}
		if i%4 != 3 {
			o.Limit = limits[i%3]
		}
		require.NoError(t, a.Reconfigure(o))
	}
	wg.Wait()
	require.Zero(t, a.Status().Inflight)
	var total int64
	for i, f := range limits {
		require.Equal(t, f.admitted.Load(), f.observed.Load(), "limit %d heard of every request it admitted, and no other", i)
		total += f.admitted.Load()
	}
	require.EqualValues(t, 8*3000, a.Status().Admitted)
	require.LessOrEqual(t, total, int64(8*3000))
}

func TestReconfigureClientBuckets(t *testing.T) {
	const client = "203.0.113.1"
	base := AdmissionOptions{MaxInflight: 1000, RatePerClient: 0.5, BurstPerClient: 1}
	cases := []struct {
		name string
		to   func(o *AdmissionOptions)
		// the client spent its one token at t0; what it gets after the change, still at t0
		wantNow  verdict
		wantLate time.Duration // then admitted this long after t0 (0: not checked)
	}{
		{"unchanged: the same buckets", func(*AdmissionOptions) {}, verdict{false, RejectRateLimit, 429, 2 * time.Second}, 2 * time.Second},
		{"faster rate: the debt stays, paid off sooner", func(o *AdmissionOptions) { o.RatePerClient = 2 }, verdict{false, RejectRateLimit, 429, 500 * time.Millisecond}, 500 * time.Millisecond},
		{"higher burst: no fresh burst for a client in debt", func(o *AdmissionOptions) { o.BurstPerClient = 5 }, verdict{false, RejectRateLimit, 429, 2 * time.Second}, 2 * time.Second},
		{"a new idle time keeps a recent client", func(o *AdmissionOptions) { o.ClientIdle = time.Minute }, verdict{false, RejectRateLimit, 429, 2 * time.Second}, 2 * time.Second},
		{"rate off: no per-client limit", func(o *AdmissionOptions) { o.RatePerClient = 0 }, admitted, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			now := t0
			o := base
			o.Now = func() time.Time { return now }
			a := NewAdmission(o)
			require.Equal(t, admitted, admit(a, client))
			next := base
			c.to(&next)
			require.NoError(t, a.Reconfigure(next))
			require.Equal(t, c.wantNow, admit(a, client))
			if c.wantLate > 0 {
				now = t0.Add(c.wantLate)
				require.Equal(t, admitted, admit(a, client))
			}
		})
	}
}

func TestReconfigureLowerBurstCutsSavedTokens(t *testing.T) {
	now := t0
	a := NewAdmission(AdmissionOptions{RatePerClient: 1, BurstPerClient: 5, Now: func() time.Time { return now }})
	require.Equal(t, admitted, admit(a, "c")) // the bucket exists, 4 tokens left
	require.NoError(t, a.Reconfigure(AdmissionOptions{RatePerClient: 1, BurstPerClient: 2}))
	require.Equal(t, admitted, admit(a, "c"))
	require.Equal(t, admitted, admit(a, "c"))
	require.False(t, admit(a, "c").ok, "2 tokens at most under the new burst")
}

func TestReconfigureMaxClientsKeepsTheMostRecent(t *testing.T) {
	now := t0
	a := NewAdmission(AdmissionOptions{RatePerClient: 0.001, BurstPerClient: 1, MaxClients: 1000, Now: func() time.Time { return now }})
	for i := range 100 { // client-99 is the most recent
		now = t0.Add(time.Duration(i) * time.Millisecond)
		require.Equal(t, admitted, admit(a, fmt.Sprint("client-", i)))
	}
	require.Equal(t, 100, a.Status().Clients)
	require.NoError(t, a.Reconfigure(AdmissionOptions{RatePerClient: 0.001, BurstPerClient: 1, MaxClients: 16}))
	s := a.Status()
	require.Equal(t, 16, s.Clients)
	require.Equal(t, 16, s.MaxClients)
	for i := 84; i < 100; i++ {
		require.False(t, admit(a, fmt.Sprint("client-", i)).ok, "client-%d is recent: kept, in debt", i)
	}
	require.Equal(t, admitted, admit(a, "client-0"), "the least recent was dropped: a fresh bucket")
}

func TestReconfigureShorterIdleDropsIdleClients(t *testing.T) {
	now := t0
	a := NewAdmission(AdmissionOptions{RatePerClient: 0.001, BurstPerClient: 1, Now: func() time.Time { return now }})
	require.Equal(t, admitted, admit(a, "old"))
	now = t0.Add(2 * time.Minute)
	require.Equal(t, admitted, admit(a, "recent"))
	require.NoError(t, a.Reconfigure(AdmissionOptions{RatePerClient: 0.001, BurstPerClient: 1, ClientIdle: time.Minute}))
	require.Equal(t, 1, a.Status().Clients)
	require.Equal(t, admitted, admit(a, "old"), "idle beyond the new idle time: forgotten")
	require.False(t, admit(a, "recent").ok)
}

func TestReconfigureTurnsThePerClientLimitOn(t *testing.T) {
	a := NewAdmission(AdmissionOptions{})
	for range 5 {
		require.Equal(t, admitted, admit(a, "c"))
	}
	require.NoError(t, a.Reconfigure(AdmissionOptions{RatePerClient: 1, BurstPerClient: 2}))
	require.Equal(t, admitted, admit(a, "c"))
	require.Equal(t, admitted, admit(a, "c"))
	require.Equal(t, RejectRateLimit, admit(a, "c").reason)
}

func TestReconfigureRefusesWhatItCannotRun(t *testing.T) {
	cases := []struct {
		o    AdmissionOptions
		want string
	}{
		{AdmissionOptions{MaxInflight: -1}, "max_inflight"},
		{AdmissionOptions{RatePerClient: -1}, "rate_per_client"},
		{AdmissionOptions{RatePerClient: math.NaN()}, "rate_per_client"},
		{AdmissionOptions{RatePerClient: math.Inf(1)}, "rate_per_client"},
		{AdmissionOptions{BurstPerClient: -1}, "burst_per_client"},
		{AdmissionOptions{MaxClients: -1}, "max_clients"},
		{AdmissionOptions{ClientIdle: -time.Second}, "client_idle"},
	}
	for _, c := range cases {
		a := NewAdmission(AdmissionOptions{MaxInflight: 1})
		require.ErrorContains(t, a.Reconfigure(c.o), c.want)
		require.Equal(t, admitted, admit(a, "c"))
		require.Equal(t, overloaded, admit(a, "c"), "the old cap of 1 stays")
	}
}

// BenchmarkAdmit measures the request path's admission: one generation
// load, the client's bucket, the caps, and the ticket's Done.
func BenchmarkAdmit(b *testing.B) {
	f := &fakeLimit{}
	f.limit.Store(1 << 30)
	for _, c := range []struct {
		name string
		o    AdmissionOptions
	}{
		{"caps", AdmissionOptions{MaxInflight: 1 << 30}},
		{"caps+soft", AdmissionOptions{MaxInflight: 1 << 30, Limit: f}},
		{"caps+soft+clients", AdmissionOptions{MaxInflight: 1 << 30, Limit: f, RatePerClient: 1e12, BurstPerClient: 1 << 30}},
	} {
		b.Run(c.name, func(b *testing.B) {
			a := NewAdmission(c.o)
			clients := make([]string, 64)
			for i := range clients {
				clients[i] = fmt.Sprint("198.51.100.", i)
			}
			r := &http.Request{}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					tk, _, _, _ := a.Admit(r, clients[i%len(clients)])
					if tk == nil {
						b.Error("refused")
						return
					}
					tk.Done(time.Millisecond, false)
					i++
				}
			})
		})
	}
}
