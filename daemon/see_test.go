package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/events"
	"github.com/lbd/lbd/internal/synth"
	"github.com/lbd/lbd/proxy"
)

// sseClient reads one server-sent-event stream of the admin API.
type sseClient struct {
	resp *http.Response
	sc   *bufio.Scanner
}

// openSSE opens path on the admin listener; it returns once the stream's
// headers arrived, so the subscription is in place.
func openSSE(t *testing.T, adminURL, path string) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, adminURL+path, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	return &sseClient{resp: resp, sc: sc}
}

// next returns the next message's data (events of another type, comments
// and ids skipped), or false at the end of the stream.
func (c *sseClient) next() ([]byte, bool) {
	typ := ""
	for c.sc.Scan() {
		line := c.sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			typ = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && typ == "":
			return []byte(strings.TrimPrefix(line, "data: ")), true
		case line == "":
			typ = ""
		}
	}
	return nil, false
}

func (c *sseClient) tap(t *testing.T) proxy.TapEvent {
	t.Helper()
	b, ok := c.next()
	require.True(t, ok, "the stream ended early")
	var e proxy.TapEvent
	require.NoError(t, json.Unmarshal(b, &e))
	return e
}

func candidateOf(e proxy.TapEvent, u string) proxy.TapCandidate {
	for _, c := range e.Candidates {
		if c.Backend == u {
			return c
		}
	}
	return proxy.TapCandidate{}
}

// The tap explains a request: a drained, an ejected and a capped backend
// with their reasons, the one that took it, the tries.
func TestTapExplainsDrainedEjectedCapped(t *testing.T) {
	bs := startBackends(t, synth.Knobs{Name: "b0"}, synth.Knobs{Name: "b1", ErrorRate: 1}, synth.Knobs{Name: "b2"}, synth.Knobs{Name: "b3"})
	l := startLBD(t, bs, func(c *config.Config) {
		c.Policy = "rr"
		c.Backends[3].Name = "three"
		c.Outlier.BaseEjection = config.Duration(5 * time.Minute)
	})
	u := func(i int) string { return bs[i].URL() }
	mustAdmin(t, l.adminURL, http.MethodPost, "/admin/drain?url="+url.QueryEscape(u(0)), "")
	mustAdmin(t, l.adminURL, http.MethodPost, "/admin/backend/cap?max_inflight=1&url="+url.QueryEscape(u(2)), "")
	// b1 answers 500 to everything: the outlier detector ejects it.
	eventually(t, 10*time.Second, "b1 ejected", func() bool {
		l.get(t, "/")
		return l.sched().Lookup(u(1)).Snapshot().State == "ejected"
	})
	held := l.sched().Lookup(u(2))
	require.True(t, held.Acquire(), "b2 at its cap of 1")
	defer held.Release(time.Millisecond, 0)

	tap := openSSE(t, l.adminURL, "/admin/tap?limit=1")
	resp, _ := l.get(t, "/some/path?q=1")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	e := tap.tap(t)
	_, more := tap.next()
	require.False(t, more, "limit=1: the server closes the stream after one event")

	require.Equal(t, resp.Header.Get("X-Request-Id"), e.ReqID)
	require.Equal(t, "GET", e.Method)
	require.Equal(t, "/some/path", e.Path)
	require.Equal(t, "127.0.0.1", e.Client)
	require.Equal(t, "default", e.Pool)
	require.Equal(t, "rr", e.Policy)
	require.Equal(t, "policy", e.By)
	require.Equal(t, u(3), e.Backend)
	require.Equal(t, "three", e.Name, "the backend's name next to its URL")
	require.Equal(t, 200, e.Status)
	require.Empty(t, e.Reject)
	require.Len(t, e.Candidates, 4)
	for i, want := range []string{"draining", "ejected", "capped", ""} {
		c := candidateOf(e, u(i))
		require.Equal(t, want, c.Reason, "backend %d", i)
		require.Equal(t, want == "", c.Eligible, "backend %d", i)
	}
	require.True(t, candidateOf(e, u(3)).Chosen)
	require.Equal(t, "three", candidateOf(e, u(3)).Name)
	require.EqualValues(t, 1, candidateOf(e, u(2)).Inflight)
	require.Len(t, e.Attempts, 1)
	require.Equal(t, proxy.TapAttempt{Backend: u(3), Name: "three", Status: 200, LatencyMs: e.Attempts[0].LatencyMs}, e.Attempts[0])
}

// A p2c-ewma event names the two backends drawn, with their costs, and
// the cheaper took the request.
func TestTapP2CSampledCosts(t *testing.T) {
	bs := startBackends(t, synth.Knobs{Name: "a"}, synth.Knobs{Name: "b", Latency: 20 * time.Millisecond}, synth.Knobs{Name: "c"})
	l := startLBD(t, bs, nil)
	tap := openSSE(t, l.adminURL, "/admin/tap?limit=20")
	for range 20 {
		l.get(t, "/")
	}
	for range 20 {
		e := tap.tap(t)
		require.Equal(t, "p2c-ewma", e.Policy)
		require.Len(t, e.Sampled, 2, "p2c drew two")
		var costs []float64
		var chosen proxy.TapCandidate
		for _, s := range e.Sampled {
			c := candidateOf(e, s)
			require.True(t, c.Sampled)
			require.Positive(t, c.Cost)
			costs = append(costs, c.Cost)
			if c.Chosen {
				chosen = c
			}
		}
		require.Equal(t, e.Backend, chosen.Backend, "one of the two took it")
		require.Equal(t, min(costs[0], costs[1]), chosen.Cost, "the cheaper")
		unsampled := 0
		for _, c := range e.Candidates {
			if !c.Sampled {
				unsampled++
			}
		}
		require.Equal(t, 1, unsampled)
	}
}

// Filters: pool, backend (URL or name), status class or code; several
// listeners at once each get what they asked for.
func TestTapFiltersAndListeners(t *testing.T) {
	bs := startBackends(t, synth.Knobs{Name: "ok"}, synth.Knobs{Name: "bad", ErrorRate: 1, ErrorStatus: 503})
	l := startLBD(t, bs, func(c *config.Config) {
		c.Policy = "rr"
		c.Backends[1].Name = "bad-one"
		c.Retries.Max = 0
		c.Outlier.Disabled = true
		c.Breaker.FailureThreshold = 1000
	})
	all := openSSE(t, l.adminURL, "/admin/tap?limit=10")
	bad := openSSE(t, l.adminURL, "/admin/tap?status=5xx&limit=5")
	code := openSSE(t, l.adminURL, "/admin/tap?status=503&backend=bad-one&limit=5")
	good := openSSE(t, l.adminURL, "/admin/tap?backend="+url.QueryEscape(bs[0].URL()+"/")+"&pool=default&limit=5")
	for range 10 {
		l.get(t, "/")
	}
	for range 10 {
		all.tap(t)
	}
	for range 5 {
		require.Equal(t, 503, bad.tap(t).Status)
		require.Equal(t, "bad-one", code.tap(t).Name)
		require.Equal(t, bs[0].URL(), good.tap(t).Backend)
	}

	for _, q := range []string{"status=6xx", "status=abc", "limit=0", "pool=nope", "backend=x&x=1"} {
		code, m := adminCall(t, l.adminURL, http.MethodGet, "/admin/tap?"+q, "")
		require.Contains(t, []int{400, 404}, code, q)
		require.NotEmpty(t, m["error"], q)
	}
}

// A rejected request is tapped too, with its reason and no candidates.
func TestTapShowsRejects(t *testing.T) {
	bs := startBackends(t, synth.Knobs{})
	l := startLBD(t, bs, nil)
	mustAdmin(t, l.adminURL, http.MethodPost, "/admin/drain?url="+url.QueryEscape(bs[0].URL()), "")
	tap := openSSE(t, l.adminURL, "/admin/tap?limit=1")
	resp, _ := l.get(t, "/")
	require.Equal(t, 503, resp.StatusCode)
	e := tap.tap(t)
	require.Equal(t, "no-backend", e.Reject)
	require.Empty(t, e.Backend)
	require.Equal(t, "draining", candidateOf(e, bs[0].URL()).Reason, "why there was no backend")
}

func recentEvents(t *testing.T, adminURL, query string) []events.Event {
	t.Helper()
	resp, err := http.Get(adminURL + "/admin/events?" + query)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var doc struct{ Events []events.Event }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&doc))
	return doc.Events
}

func hasEvent(es []events.Event, backend, kind, from, to, cause string) bool {
	for _, e := range es {
		if e.Backend == backend && e.Kind == kind && e.From == from && e.To == to && strings.Contains(e.Cause, cause) {
			return true
		}
	}
	return false
}

// The history says why each backend changed: added, drained and undrained
// by admin, probes failing, ejected by the outlier detector, its breaker
// opening, removed; filters and follow.
func TestEventsCarryCauses(t *testing.T) {
	bs := startBackends(t, synth.Knobs{Name: "p"}, synth.Knobs{Name: "e"}, synth.Knobs{Name: "x"}, synth.Knobs{Name: "y"})
	l := startLBD(t, bs, func(c *config.Config) {
		c.Policy = "rr"
		c.Health.Interval, c.Health.Fall = config.Duration(50*time.Millisecond), 3
		c.Outlier.BaseEjection = config.Duration(5 * time.Minute)
	})
	u := func(i int) string { return bs[i].URL() }
	follow := openSSE(t, l.adminURL, "/admin/events?follow=1&backend="+url.QueryEscape(u(2)))
	es := recentEvents(t, l.adminURL, "")
	require.True(t, hasEvent(es, u(0), "state", "", "healthy", "in the config file"), "%+v", es)

	mustAdmin(t, l.adminURL, http.MethodPost, "/admin/drain?url="+url.QueryEscape(u(2)), "")
	mustAdmin(t, l.adminURL, http.MethodPost, "/admin/undrain?url="+url.QueryEscape(u(2)), "")
	bs[0].Server.SetKnobs(synth.Knobs{HealthStatus: 500})
	bs[1].Server.SetKnobs(synth.Knobs{ErrorRate: 1})
	eventually(t, 10*time.Second, "b0 down by its probes, b1 ejected", func() bool {
		l.get(t, "/")
		es = recentEvents(t, l.adminURL, "")
		return hasEvent(es, u(0), "state", "healthy", "unhealthy", "probe GET /healthz answered 500 (3 of fall 3)") &&
			hasEvent(es, u(1), "state", "healthy", "ejected", "outlier: 5 consecutive 5xx")
	})
	require.True(t, hasEvent(es, u(1), "breaker", "closed", "open", "breaker: 5 consecutive failures"), "%+v", es)
	require.True(t, hasEvent(es, u(2), "state", "healthy", "draining", "admin drain"))
	require.True(t, hasEvent(es, u(2), "state", "draining", "healthy", "admin undrain"))
	mustAdmin(t, l.adminURL, http.MethodPost, "/admin/backend/add?name=new&url="+url.QueryEscape("http://127.0.0.1:1"), "")
	mustAdmin(t, l.adminURL, http.MethodPost, "/admin/backend/remove?url="+url.QueryEscape(u(3)), "")
	es = recentEvents(t, l.adminURL, "")
	require.True(t, hasEvent(es, "http://127.0.0.1:1", "state", "", "unhealthy", "admin add"), "%+v", es)
	require.True(t, hasEvent(es, u(3), "state", "healthy", "removed", "admin remove"))
	for _, e := range es {
		if e.Backend == "http://127.0.0.1:1" {
			require.Equal(t, "new", e.Name)
		}
		require.Equal(t, "default", e.Pool)
		require.NotZero(t, e.Seq)
	}

	only := recentEvents(t, l.adminURL, "backend="+url.QueryEscape(u(2))+"&limit=2")
	require.Len(t, only, 2)
	require.Equal(t, "admin undrain", only[1].Cause)
	require.Empty(t, recentEvents(t, l.adminURL, "backend=nothing"))

	var got []string
	for len(got) < 3 {
		b, ok := follow.next()
		require.True(t, ok)
		var e events.Event
		require.NoError(t, json.Unmarshal(b, &e))
		got = append(got, e.Cause)
	}
	require.Equal(t, []string{"in the config file", "admin drain", "admin undrain"}, got)
}

// A member that joins or leaves an SRV answer says so in its history,
// with the source it came from: a real DNS server in-process answers.
func TestEventsDiscoveryCauses(t *testing.T) {
	bs := startBackends(t, synth.Knobs{Name: "a"}, synth.Knobs{Name: "b"})
	z := startDNS(t)
	for _, n := range []string{"a", "b"} {
		z.set(t, n+".test", dns.TypeA, n+".test. 1 IN A 127.0.0.1")
	}
	z.set(t, srvName, dns.TypeSRV, srvRecord("a", bs[0], 1), srvRecord("b", bs[1], 1))
	l := startLBD(t, nil, func(c *config.Config) {
		fastHealth(c)
		d := config.DefaultDiscovery()
		d.DNS, d.Type, d.Resolver, d.Refresh = srvName, config.DiscoverySRV, z.addr, config.Duration(time.Second)
		c.Discovery = []config.Discovery{d}
	})
	eventually(t, 5*time.Second, "both joined", func() bool {
		es := recentEvents(t, l.adminURL, "")
		return hasEvent(es, bs[0].URL(), "state", "", "unhealthy", "dns: joined the SRV set of "+srvName) &&
			hasEvent(es, bs[1].URL(), "state", "", "unhealthy", "dns: joined the SRV set of "+srvName)
	})
	z.set(t, srvName, dns.TypeSRV, srvRecord("a", bs[0], 1))
	eventually(t, 5*time.Second, "b left", func() bool {
		return slices.ContainsFunc(recentEvents(t, l.adminURL, "backend="+url.QueryEscape(bs[1].URL())), func(e events.Event) bool {
			return e.Kind == "state" && e.To == "removed" && e.Cause == "dns: left the SRV set of "+srvName
		})
	})
}
