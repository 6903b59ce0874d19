package daemon

import (
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/internal/synth"
)

const srvName = "_http._tcp.api.test"

// srvRecord is the SRV record of backend b under srvName, with target NAME.test.
func srvRecord(name string, b *synth.Running, weight int) string {
	_, port, _ := net.SplitHostPort(b.Addr())
	return fmt.Sprintf("%s. 1 IN SRV 10 %d %s %s.test.", srvName, weight, port, name)
}

func portOf(t *testing.T, b *synth.Running) int {
	t.Helper()
	_, p, err := net.SplitHostPort(b.Addr())
	require.NoError(t, err)
	n, err := strconv.Atoi(p)
	require.NoError(t, err)
	return n
}

// discoveredURLs lists the pool's backends that came from the SRV source.
func (l *testLBD) discoveredURLs(t *testing.T) []string {
	t.Helper()
	var doc struct {
		Backends []struct{ URL, Source, State string } `json:"backends"`
	}
	getJSON(t, l.adminURL+"/admin/backends", &doc)
	var out []string
	for _, b := range doc.Backends {
		if b.Source == "dns:srv:"+srvName {
			out = append(out, b.URL)
		}
	}
	slices.Sort(out)
	return out
}

func sorted(xs ...string) []string { slices.Sort(xs); return xs }

// lbd pointed at an SRV name with no static backends follows it: members
// join (probed first) and take traffic, members that leave drain out, and
// the clients under load see no error; a discovered member cannot be
// removed by hand (409) but its drain survives the refreshes; the source
// shows in /admin/discovery; a resolver that goes down keeps the last good
// set; a reload without the source takes its members away.
func TestDiscoveryFollowsSRVRecords(t *testing.T) {
	bs := startBackends(t, synth.Knobs{Name: "a", Latency: time.Millisecond}, synth.Knobs{Name: "b", Latency: time.Millisecond},
		synth.Knobs{Name: "c", Latency: time.Millisecond})
	z := startDNS(t)
	for _, n := range []string{"a", "b", "c"} {
		z.set(t, n+".test", dns.TypeA, n+".test. 1 IN A 127.0.0.1")
	}
	z.set(t, srvName, dns.TypeSRV, srvRecord("a", bs[0], 1), srvRecord("b", bs[1], 1))
	l := startLBD(t, nil, func(c *config.Config) {
		fastHealth(c)
		c.Health.Rise = 1
		d := config.DefaultDiscovery()
		d.DNS, d.Type, d.Resolver, d.Refresh = srvName, config.DiscoverySRV, z.addr, config.Duration(time.Second)
		c.Discovery = []config.Discovery{d}
	})
	ab := sorted(bs[0].URL(), bs[1].URL())
	eventually(t, 5*time.Second, "the SRV members joined", func() bool { return slices.Equal(l.discoveredURLs(t), ab) })
	eventually(t, 5*time.Second, "and took traffic", func() bool {
		resp, _ := l.get(t, "/")
		return resp.StatusCode == http.StatusOK
	})

	stop := make(chan struct{})
	totals := loadWhile(l.url, stop)
	z.set(t, srvName, dns.TypeSRV, srvRecord("b", bs[1], 1), srvRecord("c", bs[2], 1))
	bc := sorted(bs[1].URL(), bs[2].URL())
	eventually(t, 10*time.Second, "the records' change followed", func() bool { return slices.Equal(l.discoveredURLs(t), bc) })
	before := bs[2].Server.Requests()
	eventually(t, 5*time.Second, "the new member serves", func() bool { return bs[2].Server.Requests() > before })
	close(stop)
	tot := <-totals
	require.Zero(t, tot.errors, "transport errors while the records changed")
	require.Empty(t, tot.other, "non-200 answers while the records changed")

	code, m := adminCall(t, l.adminURL, "DELETE", "/admin/backends?url="+bs[1].URL(), "")
	require.Equal(t, http.StatusConflict, code)
	require.Contains(t, m["error"], "dns:srv:"+srvName)
	mustAdmin(t, l.adminURL, "POST", "/admin/drain?url="+bs[1].URL(), "")
	q := z.count()
	eventually(t, 10*time.Second, "two more refreshes", func() bool { return z.count() >= q+2 })
	require.Equal(t, "draining", l.sched().Lookup(bs[1].URL()).Snapshot().State, "the drain survives the refreshes")

	var disc struct {
		Sources []struct {
			Source      string `json:"source"`
			Pool        string `json:"pool"`
			MemberCount int    `json:"member_count"`
		} `json:"sources"`
	}
	getJSON(t, l.adminURL+"/admin/discovery", &disc)
	require.Len(t, disc.Sources, 1)
	require.Equal(t, "dns:srv:"+srvName, disc.Sources[0].Source)
	require.Equal(t, 2, disc.Sources[0].MemberCount)

	z.stop() // the resolver is down: lookups fail, the last good set stays
	eventually(t, 10*time.Second, "the source to see the resolver fail", func() bool {
		var raw map[string]any
		getJSON(t, l.adminURL+"/admin/discovery", &raw)
		src := raw["sources"].([]any)[0].(map[string]any)
		return src["last_error"] != nil && src["last_error"] != ""
	})
	require.Equal(t, bc, l.discoveredURLs(t), "a failing resolver keeps the last good set")

	next := l.d.owner.fileConfig().Clone()
	next.Discovery = nil
	require.NoError(t, l.reload(t, next))
	require.Empty(t, l.discoveredURLs(t), "a source the file no longer has takes its members away")
}

// Discovered members are health checked like any other: one whose
// /healthz fails stays out, and a members of an A record get the port the
// config gives.
func TestDiscoveredMembersAreHealthChecked(t *testing.T) {
	good := startBackends(t, synth.Knobs{Name: "good"})[0]
	sick := startBackends(t, synth.Knobs{Name: "sick", HealthStatus: 500})[0]
	z := startDNS(t)
	z.set(t, "web.test", dns.TypeA, "web.test. 1 IN A 127.0.0.1")
	z.set(t, "sick.test", dns.TypeA, "sick.test. 1 IN A 127.0.0.1")
	l := startLBD(t, nil, func(c *config.Config) {
		fastHealth(c)
		for _, s := range []struct {
			name string
			port int
		}{{"web.test", portOf(t, good)}, {"sick.test", portOf(t, sick)}} {
			d := config.DefaultDiscovery()
			d.DNS, d.Type, d.Port, d.Resolver, d.Refresh = s.name, config.DiscoveryA, s.port, z.addr, config.Duration(time.Second)
			c.Discovery = append(c.Discovery, d)
		}
	})
	eventually(t, 5*time.Second, "both members joined", func() bool { return len(l.sched().Picker().Backends()) == 2 })
	eventually(t, 5*time.Second, "the good one is probed up", func() bool {
		h := l.sched().Lookup(good.URL())
		return h != nil && h.Snapshot().Eligible
	})
	require.Equal(t, "unhealthy", l.sched().Lookup(sick.URL()).Snapshot().State, "its probe failed: it never took traffic")
	for range 10 {
		resp, _ := l.get(t, "/")
		require.Equal(t, "good", resp.Header.Get("X-Backend"))
	}
}
