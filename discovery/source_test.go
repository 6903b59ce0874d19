package discovery

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/lbd/lbd/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// sink records what a source delivers; it fails its next `fail` calls.
type sink struct {
	mu      sync.Mutex
	updates []Update
	calls   int
	fail    int
}

func (k *sink) apply(_ context.Context, u Update) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls++
	if k.fail > 0 {
		k.fail--
		return errors.New("routing owner busy")
	}
	k.updates = append(k.updates, u)
	return nil
}

func (k *sink) got() []Update {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.updates)
}

func (k *sink) last() Update {
	u := k.got()
	if len(u) == 0 {
		return Update{}
	}
	return u[len(u)-1]
}

func (k *sink) setFail(n int) { k.mu.Lock(); k.fail = n; k.mu.Unlock() }

// harness is one source under test, inside a synctest bubble.
type harness struct {
	t   *testing.T
	src *Source
	k   *sink
	reg *prometheus.Registry
	met *Metrics
	t0  time.Time
}

func start(t *testing.T, d config.Discovery, tweak ...func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, k: &sink{}, reg: prometheus.NewRegistry(), t0: time.Now()}
	var err error
	h.met, err = NewMetrics(h.reg)
	require.NoError(t, err)
	c := Config{
		Source: d, Apply: h.k.apply, Metrics: h.met, Logger: quietLog,
		Rand: rand.New(rand.NewPCG(1, 2)), Jitter: -1, Timeout: 200 * time.Millisecond,
	}
	for _, f := range tweak {
		f(&c)
	}
	h.src, err = New(c)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, h.src.Stop(context.Background())) })
	return h
}

// advance lets d pass on the bubble's clock and waits until every goroutine
// of the bubble is idle: lookups (real network I/O) and deliveries done.
func advance(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

func (h *harness) status() *Status { return h.src.Status() }

func (h *harness) lookups(result string) float64 {
	return testutil.ToFloat64(h.met.lookups.WithLabelValues("default", h.src.Name(), result))
}

// gauge reads one of the source's gauges.
func (h *harness) gauge(g *prometheus.GaugeVec) float64 {
	return testutil.ToFloat64(g.WithLabelValues("default", h.src.Name()))
}

func twoMembers(z *testDNS) {
	z.set(api, dns.TypeSRV, api+" 60 IN SRV 1 1 8080 a.node.", api+" 60 IN SRV 1 1 8080 b.node.")
	z.setExtra(api, dns.TypeSRV, "a.node. 60 IN A 10.0.0.1", "b.node. 60 IN A 10.0.0.2")
}

func refreshEvery(d time.Duration, src config.Discovery) config.Discovery {
	src.Refresh = config.Duration(d)
	return src
}

// TestSourceFollowsRecords: the first answer is delivered, an unchanged
// one is not, a changed one is, each as the full set.
func TestSourceFollowsRecords(t *testing.T) {
	z := startDNS(t)
	twoMembers(z)
	synctest.Test(t, func(t *testing.T) {
		h := start(t, refreshEvery(5*time.Second, srvSource(api, z.addr)))
		require.Empty(t, h.k.got(), "nothing before the first answer")
		require.Equal(t, "dns:srv:_http._tcp.api.service.consul", h.src.Name())
		require.Equal(t, "default", h.src.Pool())

		advance(DefaultTickEvery) // the first lookup is due at once: the first tick runs it
		require.Equal(t, []Update{{Source: h.src.Name(), Pool: "default", Members: []Member{
			{URL: "http://10.0.0.1:8080", Weight: 1, Protocol: "http1"},
			{URL: "http://10.0.0.2:8080", Weight: 1, Protocol: "http1"},
		}}}, h.k.got())
		st := h.status()
		require.Equal(t, 2, st.MemberCount)
		require.True(t, st.Delivered)
		require.False(t, st.Stale())
		require.Equal(t, h.t0.Add(DefaultTickEvery), st.LastSuccess)
		require.Equal(t, st.LastSuccess.Add(5*time.Second-DefaultTickEvery), st.NextRefresh,
			"refresh 5s is below the TTL of 60s; a tick off, since a lookup starts at the first tick after it is due")
		require.Equal(t, "1m0s", st.TTL)

		advance(5 * time.Second)
		require.Equal(t, uint64(2), h.status().Lookups)
		require.Len(t, h.k.got(), 1, "the same answer is not delivered again")

		z.set(api, dns.TypeSRV, api+" 60 IN SRV 1 7 8080 a.node.", api+" 60 IN SRV 1 1 8080 c.node.")
		z.setExtra(api, dns.TypeSRV, "a.node. 60 IN A 10.0.0.1", "c.node. 60 IN A 10.0.0.3")
		advance(5 * time.Second)
		require.Len(t, h.k.got(), 2)
		require.Equal(t, []Member{
			{URL: "http://10.0.0.1:8080", Weight: 7, Protocol: "http1"},
			{URL: "http://10.0.0.3:8080", Weight: 1, Protocol: "http1"},
		}, h.k.last().Members, "the full set, with the new weight")
		require.Equal(t, float64(3), h.lookups(ResultSuccess))
		require.Equal(t, float64(2), h.gauge(h.met.members))
	})
}

// TestResolverDownKeepsSet: a stopped resolver fails every lookup; the set
// stays, the source is stale from the first failure, and the retries back
// off from the floor, doubling up to refresh. A restarted resolver makes
// the source current again without a delivery, since nothing changed.
func TestResolverDownKeepsSet(t *testing.T) {
	z := startDNS(t)
	twoMembers(z)
	synctest.Test(t, func(t *testing.T) {
		h := start(t, refreshEvery(10*time.Second, srvSource(api, z.addr)))
		advance(DefaultTickEvery)
		require.Len(t, h.k.last().Members, 2)
		good := h.status().LastSuccess

		z.stop()
		advance(10 * time.Second)
		st := h.status()
		downAt := good.Add(10*time.Second - DefaultTickEvery)
		require.Equal(t, downAt, st.StaleSince)
		require.Equal(t, ResultError, st.LastResult)
		require.Contains(t, st.LastError, "refused")
		require.Equal(t, 2, st.MemberCount, "the last good set is kept")
		require.Equal(t, good, st.LastSuccess)

		var waits []time.Duration
		for range 5 {
			st := h.status()
			waits = append(waits, st.NextRefresh.Sub(st.LastErrorAt))
			advance(st.NextRefresh.Sub(time.Now()))
		}
		require.Equal(t, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second}, waits)
		st = h.status()
		require.Equal(t, 6, st.ConsecutiveFailures)
		require.Equal(t, downAt, st.StaleSince, "stale since the first failure")
		require.Len(t, h.k.got(), 1, "nothing delivered while failing")
		require.Equal(t, float64(6), h.lookups(ResultError))
		require.Equal(t, unixSeconds(downAt), h.gauge(h.met.staleSince))
		require.Equal(t, unixSeconds(good), h.gauge(h.met.lastSuccess))
		require.Equal(t, float64(2), h.gauge(h.met.members))

		z.restart()
		advance(h.status().NextRefresh.Sub(time.Now()))
		st = h.status()
		require.False(t, st.Stale())
		require.Equal(t, 0, st.ConsecutiveFailures)
		require.Equal(t, time.Now(), st.LastSuccess)
		require.Len(t, h.k.got(), 1, "the same set: nothing to deliver")
		require.Zero(t, h.gauge(h.met.staleSince))
	})
}

// TestServFailAndTimeoutKeepSet: SERVFAIL and an unanswered query are
// failures too, counted under their own result.
func TestServFailAndTimeoutKeepSet(t *testing.T) {
	z := startDNS(t)
	twoMembers(z)
	synctest.Test(t, func(t *testing.T) {
		h := start(t, refreshEvery(2*time.Second, srvSource(api, z.addr)))
		advance(DefaultTickEvery)

		z.forceRcode(api, dns.TypeSRV, dns.RcodeServerFailure)
		advance(2 * time.Second)
		require.Equal(t, ResultServFail, h.status().LastResult)
		require.Equal(t, float64(1), h.lookups(ResultServFail))

		z.forceRcode(api, dns.TypeSRV, dns.RcodeSuccess)
		z.setDrop(true) // the read deadline is real time: 200ms of it
		advance(time.Second)
		require.Equal(t, ResultTimeout, h.status().LastResult)
		require.Equal(t, float64(1), h.lookups(ResultTimeout))
		require.Equal(t, 2, h.status().MemberCount)
		require.True(t, h.status().Stale())
		require.Len(t, h.k.got(), 1)

		z.setDrop(false)
		advance(h.status().NextRefresh.Sub(time.Now()))
		require.False(t, h.status().Stale())
		require.Len(t, h.k.got(), 1)
	})
}

// TestEmptyBelievedWhenRepeated: one NXDOMAIN does not empty the set, two
// in a row do; an answer or a failure between them starts over.
func TestEmptyBelievedWhenRepeated(t *testing.T) {
	z := startDNS(t)
	twoMembers(z)
	synctest.Test(t, func(t *testing.T) {
		h := start(t, refreshEvery(3*time.Second, srvSource(api, z.addr)))
		advance(DefaultTickEvery)
		require.Len(t, h.k.last().Members, 2)

		z.remove(api)
		advance(3 * time.Second)
		st := h.status()
		require.Equal(t, ResultNXDomain, st.LastResult)
		require.Equal(t, 2, st.MemberCount, "one NXDOMAIN is not believed")
		require.True(t, st.Stale())
		require.Contains(t, st.LastError, "nxdomain answer for _http._tcp.api.service.consul; believed if the next lookup gives it too")

		twoMembers(z)
		advance(3 * time.Second)
		require.False(t, h.status().Stale(), "the records are back")

		z.remove(api)
		advance(3 * time.Second) // nxdomain 1
		z.forceRcode(api, dns.TypeSRV, dns.RcodeServerFailure)
		advance(3 * time.Second) // a failure between: starts over
		z.forceRcode(api, dns.TypeSRV, dns.RcodeSuccess)
		advance(time.Second) // nxdomain 1 again (the retry after one failure is at the floor)
		require.Equal(t, 2, h.status().MemberCount)
		require.Len(t, h.k.got(), 1)

		advance(3 * time.Second) // nxdomain 2: believed
		st = h.status()
		require.Equal(t, 0, st.MemberCount)
		require.False(t, st.Stale())
		require.Equal(t, []Member{}, h.k.last().Members, "delivered as an empty set")
		require.Len(t, h.k.got(), 2)

		advance(3 * time.Second) // empty stays empty: nothing more to deliver
		require.Len(t, h.k.got(), 2)
		require.False(t, h.status().Stale())
		require.Equal(t, float64(5), h.lookups(ResultNXDomain))
	})
}

// TestFirstAnswerEmpty: the rule holds at start too; the owner may hold
// members from before.
func TestFirstAnswerEmpty(t *testing.T) {
	z := startDNS(t)
	z.set("web.example.", dns.TypeTXT, `web.example. 60 IN TXT "no addresses"`)
	synctest.Test(t, func(t *testing.T) {
		h := start(t, refreshEvery(time.Second, aSource("web.example", z.addr, 80)))
		advance(DefaultTickEvery)
		require.Empty(t, h.k.got())
		require.True(t, h.status().Stale())
		require.False(t, h.status().Delivered)
		advance(time.Second)
		require.Equal(t, []Update{{Source: "dns:a:web.example", Pool: "default", Members: []Member{}}}, h.k.got())
		require.Equal(t, float64(2), h.lookups(ResultEmpty))
	})
}

// TestTTLSchedulesRefresh: the next lookup is due at min(refresh, TTL),
// never sooner than the floor, and jitter only ever shortens the wait.
func TestTTLSchedulesRefresh(t *testing.T) {
	z := startDNS(t)
	for _, tc := range []struct {
		name     string
		ttl      string
		jitter   float64
		min, max time.Duration // of the wait scheduled
		bound    time.Duration // of the time from one lookup to the next
	}{
		{"ttl below refresh", "5", -1, 4900 * time.Millisecond, 4900 * time.Millisecond, 5 * time.Second},
		{"ttl 0: the floor wins", "0", -1, time.Second, time.Second, time.Second + DefaultTickEvery},
		{"ttl above refresh", "600", -1, 29900 * time.Millisecond, 29900 * time.Millisecond, 30 * time.Second},
		{"jitter takes off up to 10%", "600", 0, 26910 * time.Millisecond, 29900 * time.Millisecond, 30 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			z.set("web.example.", dns.TypeA, "web.example. "+tc.ttl+" IN A 192.0.2.1")
			z.set("web.example.", dns.TypeAAAA)
			synctest.Test(t, func(t *testing.T) {
				h := start(t, refreshEvery(30*time.Second, aSource("web.example", z.addr, 80)),
					func(c *Config) { c.Jitter = tc.jitter })
				advance(DefaultTickEvery)
				for range 3 {
					st := h.status()
					wait := st.NextRefresh.Sub(st.LastSuccess)
					require.GreaterOrEqual(t, wait, tc.min)
					require.LessOrEqual(t, wait, tc.max)

					// The lookup runs when it is due (at the first tick
					// from then), not before.
					before := z.count("web.example.")
					advance(st.NextRefresh.Sub(time.Now()) - time.Millisecond)
					require.Equal(t, before, z.count("web.example."))
					advance(time.Millisecond + DefaultTickEvery)
					require.Equal(t, before+2, z.count("web.example."), "one A and one AAAA query")
					got := h.status().LastSuccess
					require.False(t, got.Before(st.NextRefresh))
					require.Less(t, got.Sub(st.NextRefresh), DefaultTickEvery)
					require.LessOrEqual(t, got.Sub(st.LastSuccess), tc.bound, "no later than the TTL or refresh")
				}
			})
		})
	}
	z.set("web.example.", dns.TypeA)
	z.set("web.example.", dns.TypeTXT, `web.example. 60 IN TXT "no addresses"`)
	z.setSOATTL(3)
	synctest.Test(t, func(t *testing.T) {
		h := start(t, refreshEvery(30*time.Second, aSource("web.example", z.addr, 80)))
		advance(DefaultTickEvery)
		st := h.status()
		require.Equal(t, ResultEmpty, st.LastResult)
		require.Equal(t, 3*time.Second-DefaultTickEvery, st.NextRefresh.Sub(st.LastErrorAt), "a negative answer lives as long as its SOA says")
	})
}
