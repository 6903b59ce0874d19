package discovery

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/lbd/lbd/actor"
)

// TestSinkErrorRedelivered: a set the sink refused is offered again at the
// next tick, and the newest set wins.
func TestSinkErrorRedelivered(t *testing.T) {
	z := startDNS(t)
	twoMembers(z)
	synctest.Test(t, func(t *testing.T) {
		h := start(t, refreshEvery(time.Second, srvSource(api, z.addr)))
		h.k.setFail(2)
		advance(DefaultTickEvery)
		st := h.status()
		require.False(t, st.Delivered)
		require.Equal(t, "routing owner busy", st.LastDeliveryError)
		require.Equal(t, 2, st.MemberCount)

		advance(DefaultTickEvery) // fails again
		require.Empty(t, h.k.got())
		advance(DefaultTickEvery)
		require.Len(t, h.k.got(), 1)
		require.Len(t, h.k.last().Members, 2)
		require.True(t, h.status().Delivered)
		require.Equal(t, 3, h.k.calls)

		h.k.setFail(1000)
		z.set(api, dns.TypeSRV, api+" 60 IN SRV 1 1 8080 a.node.")
		advance(time.Second)
		require.False(t, h.status().Delivered)
		require.Equal(t, 1, h.status().MemberCount)
		h.k.setFail(0)
		advance(DefaultTickEvery)
		require.Len(t, h.k.got(), 2)
		require.Equal(t, []string{"http://10.0.0.1:8080"}, urls(h.k.last().Members))
	})
}

// TestSinkPanicIsAnError: a panicking sink does not take lbd down; the set
// is offered again.
func TestSinkPanicIsAnError(t *testing.T) {
	z := startDNS(t)
	twoMembers(z)
	synctest.Test(t, func(t *testing.T) {
		var once sync.Once
		k := &sink{}
		h := start(t, srvSource(api, z.addr), func(c *Config) {
			c.Apply = func(ctx context.Context, u Update) error {
				once.Do(func() { panic("boom") })
				return k.apply(ctx, u)
			}
		})
		advance(DefaultTickEvery)
		require.Equal(t, "sink panicked: boom", h.status().LastDeliveryError)
		advance(DefaultTickEvery)
		require.Len(t, k.got(), 1)
	})
}

// TestRestartAfterPanic: a panic in the actor's own handling (here, its log
// handler) restarts it from its last published state, and it goes on.
func TestRestartAfterPanic(t *testing.T) {
	z := startDNS(t)
	twoMembers(z)
	synctest.Test(t, func(t *testing.T) {
		reg := actor.NewRegistry()
		panicky := panicOnce{msg: "discovery: members changed", fired: new(atomic.Bool), h: slog.NewTextHandler(io.Discard, nil)}
		h := start(t, srvSource(api, z.addr), func(c *Config) {
			c.Registry, c.Logger = reg, slog.New(panicky)
		})
		advance(DefaultTickEvery) // the first lookup panics while taking the new set
		require.Empty(t, h.k.got())
		advance(DefaultTickEvery) // restarted: due at once, the next lookup takes it
		require.Len(t, h.k.got(), 1)
		require.Len(t, h.k.last().Members, 2)
		stats := reg.Snapshot()
		require.Len(t, stats, 1)
		require.Equal(t, uint64(1), stats[0].Restarts)
		require.Equal(t, "default/dns:srv:_http._tcp.api.service.consul", stats[0].Name)
		require.Contains(t, stats[0].State, "members=2 current")
	})
}

// panicOnce is a log handler that panics the first time it sees msg.
type panicOnce struct {
	msg   string
	fired *atomic.Bool
	h     slog.Handler
}

func (p panicOnce) Enabled(context.Context, slog.Level) bool { return true }

func (p panicOnce) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == p.msg && p.fired.CompareAndSwap(false, true) {
		panic("log handler failed")
	}
	return p.h.Handle(ctx, r)
}

func (p panicOnce) WithAttrs(as []slog.Attr) slog.Handler { p.h = p.h.WithAttrs(as); return p }
func (p panicOnce) WithGroup(n string) slog.Handler       { p.h = p.h.WithGroup(n); return p }

// TestStopLeavesNothing, in real time: Stop cancels a delivery that the
// sink holds, waits for it, removes the metric series, and no goroutine
// outlives it.
func TestStopLeavesNothing(t *testing.T) {
	z := startDNS(t)
	twoMembers(z)
	ignore := goleak.IgnoreCurrent() // the DNS server's; the source's must all end
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	require.NoError(t, err)
	called := make(chan struct{})
	src, err := New(Config{
		Source: srvSource(api, z.addr), Metrics: m, Logger: quietLog,
		Apply: func(ctx context.Context, u Update) error {
			close(called)
			<-ctx.Done() // a sink that never answers on its own
			return ctx.Err()
		},
	})
	require.NoError(t, err)
	select {
	case <-called:
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery within 10s")
	}
	n, err := testutil.GatherAndCount(reg)
	require.NoError(t, err)
	require.Positive(t, n)

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	require.NoError(t, src.Stop(ctx))
	n, err = testutil.GatherAndCount(reg)
	require.NoError(t, err)
	require.Zero(t, n, "a stopped source's series are gone")
	goleak.VerifyNone(t, ignore)
}

func TestNewRejects(t *testing.T) {
	_, err := New(Config{Source: aSource("web.example", "", 0), Apply: (&sink{}).apply})
	require.EqualError(t, err, "discovery dns:a:web.example: port: is required for type a: A and AAAA records carry no port")
	_, err = New(Config{Source: srvSource(api, "")})
	require.EqualError(t, err, "discovery: a source needs a sink (Config.Apply)")
}

// TestStatusJSON pins the body of GET /admin/discovery's entries.
func TestStatusJSON(t *testing.T) {
	z := startDNS(t)
	twoMembers(z)
	synctest.Test(t, func(t *testing.T) {
		src := srvSource(api, z.addr)
		src.Scheme, src.ServerName = "https", "api.internal"
		h := start(t, src, func(c *Config) { c.Pool = "api" })
		advance(DefaultTickEvery)
		z.forceRcode(api, dns.TypeSRV, dns.RcodeServerFailure)
		advance(10 * time.Second)
		b, err := json.MarshalIndent(h.status(), "", "  ")
		require.NoError(t, err)
		require.JSONEq(t, `{
  "source": "dns:srv:_http._tcp.api.service.consul",
  "pool": "api",
  "dns": "_http._tcp.api.service.consul",
  "type": "srv",
  "resolver": "`+z.addr+`",
  "refresh": "10s",
  "member_count": 2,
  "members": [
    {"url": "https://10.0.0.1:8080", "weight": 1, "max_inflight": 0, "protocol": "http1", "server_name": "api.internal"},
    {"url": "https://10.0.0.2:8080", "weight": 1, "max_inflight": 0, "protocol": "http1", "server_name": "api.internal"}
  ],
  "last_result": "servfail",
  "last_success": "2000-01-01T00:00:00.1Z",
  "last_error": "SRV _http._tcp.api.service.consul. via `+z.addr+`: server failure (SERVFAIL)",
  "last_error_at": "2000-01-01T00:00:10Z",
  "stale_since": "2000-01-01T00:00:10Z",
  "consecutive_failures": 1,
  "ttl": "1m0s",
  "next_refresh": "2000-01-01T00:00:11Z",
  "lookups": 2,
  "delivered": true
}`, string(b))

		// Before any answer: members is [], not null, and the times are left out.
		h2 := start(t, aSource("web.example", z.addr, 80))
		b, err = json.Marshal(h2.status())
		require.NoError(t, err)
		require.Contains(t, string(b), `"members":[]`)
		require.NotContains(t, string(b), "last_success")
		require.NotContains(t, string(b), "stale_since")
	})
}
