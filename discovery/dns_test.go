package discovery

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/lbd/lbd/config"
)

func srvSource(name, resolver string) config.Discovery {
	d := config.DefaultDiscovery()
	d.DNS, d.Type, d.Resolver = name, config.DiscoverySRV, resolver
	return d
}

func aSource(name, resolver string, port int) config.Discovery {
	d := config.DefaultDiscovery()
	d.DNS, d.Type, d.Resolver, d.Port = name, config.DiscoveryA, resolver, port
	return d
}

func testClient(resolver string) *client {
	return &client{resolver: resolver, timeout: time.Second}
}

const api = "_http._tcp.api.service.consul."

// TestLookupSRV: only the lowest priority counts; weights map (0 -> 1,
// capped at MaxWeight, scaled by the configured weight); targets come from
// the additional section when it has them and from queries otherwise;
// IPv6 is bracketed; the order is by address then port.
func TestLookupSRV(t *testing.T) {
	z := startDNS(t)
	z.set(api, dns.TypeSRV,
		api+" 30 IN SRV 10 0 8080 node-a.node.consul.",
		api+" 30 IN SRV 10 5 8081 node-b.node.consul.",
		api+" 30 IN SRV 10 2000 9000 node-c.node.consul.",
		api+" 30 IN SRV 20 100 8080 backup.node.consul.")
	z.setExtra(api, dns.TypeSRV,
		"node-a.node.consul. 30 IN A 10.0.0.2",
		"node-b.node.consul. 30 IN A 10.0.0.1",
		"node-b.node.consul. 30 IN AAAA 2001:db8::1")
	z.set("node-c.node.consul.", dns.TypeAAAA, "node-c.node.consul. 7 IN AAAA 2001:db8::c")
	z.set("backup.node.consul.", dns.TypeA, "backup.node.consul. 30 IN A 10.9.9.9")

	out, err := testClient(z.addr).lookup(t.Context(), srvSource(api, z.addr))
	require.NoError(t, err)
	require.Equal(t, ResultSuccess, out.result)
	require.Equal(t, []Member{
		{URL: "http://10.0.0.1:8081", Weight: 5, Protocol: "http1"},
		{URL: "http://10.0.0.2:8080", Weight: 1, Protocol: "http1"},
		{URL: "http://[2001:db8::1]:8081", Weight: 5, Protocol: "http1"},
		{URL: "http://[2001:db8::c]:9000", Weight: config.MaxWeight, Protocol: "http1"},
	}, out.members)
	require.Equal(t, ttl{d: 7 * time.Second, set: true}, out.ttl, "the lowest TTL of every record used")
	for _, m := range out.members {
		n, err := config.NormalizeURL(m.URL)
		require.NoError(t, err)
		require.Equal(t, n, m.URL, "members are named as static backends are")
	}
	require.ElementsMatch(t, []string{
		"udp SRV " + api, "udp A node-c.node.consul.", "udp AAAA node-c.node.consul.",
	}, z.seen(), "targets in the additional section are not queried; the backup priority is not either")

	src := srvSource(api, z.addr)
	src.Weight = 3
	out, err = testClient(z.addr).lookup(t.Context(), src)
	require.NoError(t, err)
	require.Equal(t, []int{15, 3, 15, config.MaxWeight}, weights(out.members), "the configured weight scales the records'")
}

func weights(ms []Member) []int {
	out := make([]int, len(ms))
	for i, m := range ms {
		out[i] = m.Weight
	}
	return out
}

func TestLookupA(t *testing.T) {
	z := startDNS(t)
	z.set("web.example.", dns.TypeA, "web.example. 60 IN A 192.0.2.20", "web.example. 60 IN A 192.0.2.10",
		"web.example. 60 IN A 0.0.0.0")
	z.set("web.example.", dns.TypeAAAA, "web.example. 20 IN AAAA ::1", "web.example. 20 IN AAAA ::ffff:192.0.2.10")
	src := aSource("web.example", z.addr, 8443)
	src.Scheme, src.Protocol, src.Weight, src.MaxInflight = "https", "h2", 4, 50

	out, err := testClient(z.addr).lookup(t.Context(), src)
	require.NoError(t, err)
	require.Equal(t, []Member{
		{URL: "https://192.0.2.10:8443", Weight: 4, MaxInflight: 50, Protocol: "h2", ServerName: "web.example"},
		{URL: "https://192.0.2.20:8443", Weight: 4, MaxInflight: 50, Protocol: "h2", ServerName: "web.example"},
		{URL: "https://[::1]:8443", Weight: 4, MaxInflight: 50, Protocol: "h2", ServerName: "web.example"},
	}, out.members, "0.0.0.0 is skipped; a v4-mapped AAAA is its A record's host")
	require.Equal(t, ttl{d: 20 * time.Second, set: true}, out.ttl)
	require.Equal(t, config.Backend{URL: "https://192.0.2.10:8443", Weight: 4, MaxInflight: 50, Protocol: "h2",
		ServerName: "web.example"}, out.members[0].Backend())
}

// TestLookupCNAME: an A name that is a CNAME counts the chain's records
// and TTLs, and records for names outside the chain are ignored.
func TestLookupCNAME(t *testing.T) {
	z := startDNS(t)
	z.set("web.example.", dns.TypeA,
		"web.example. 50 IN CNAME lb.example.",
		"lb.example. 40 IN CNAME real.example.",
		"real.example. 300 IN A 192.0.2.1",
		"other.example. 300 IN A 192.0.2.99")
	z.set("web.example.", dns.TypeAAAA, "web.example. 50 IN CNAME lb.example.")
	out, err := testClient(z.addr).lookup(t.Context(), aSource("web.example", z.addr, 80))
	require.NoError(t, err)
	require.Equal(t, []string{"http://192.0.2.1:80"}, urls(out.members))
	require.Equal(t, 40*time.Second, out.ttl.d)
}

func urls(ms []Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.URL
	}
	return out
}

// TestLookupNegative: NXDOMAIN and an empty answer are told apart, and
// carry their SOA's negative TTL.
func TestLookupNegative(t *testing.T) {
	z := startDNS(t)
	z.setSOATTL(15)
	c := testClient(z.addr)

	out, err := c.lookup(t.Context(), srvSource(api, z.addr))
	require.NoError(t, err)
	require.Equal(t, outcome{result: ResultNXDomain, ttl: ttl{15 * time.Second, true}}, out)

	z.set(api, dns.TypeTXT, api+" 60 IN TXT \"exists\"")
	out, err = c.lookup(t.Context(), srvSource(api, z.addr))
	require.NoError(t, err)
	require.Equal(t, ResultEmpty, out.result, "the name exists but has no SRV records")

	z.set(api, dns.TypeSRV, api+" 60 IN SRV 0 0 0 .")
	out, err = c.lookup(t.Context(), srvSource(api, z.addr))
	require.NoError(t, err)
	require.Equal(t, ResultEmpty, out.result, `target "." is "no such service" (RFC 2782)`)

	// A target that does not exist adds no member; the others stay.
	z.set(api, dns.TypeSRV, api+" 60 IN SRV 1 1 80 gone.example.", api+" 60 IN SRV 1 1 80 here.example.")
	z.set("here.example.", dns.TypeA, "here.example. 60 IN A 192.0.2.7")
	out, err = c.lookup(t.Context(), srvSource(api, z.addr))
	require.NoError(t, err)
	require.Equal(t, []string{"http://192.0.2.7:80"}, urls(out.members))
	require.Equal(t, 15*time.Second, out.ttl.d, "the gone target's negative TTL counts")
}

// TestLookupFailures: SERVFAIL, REFUSED, a server that does not answer and
// one that is down are errors (so the caller keeps its set), each named.
func TestLookupFailures(t *testing.T) {
	z := startDNS(t)
	z.set(api, dns.TypeSRV, api+" 60 IN SRV 1 1 80 t.example.")
	z.set("t.example.", dns.TypeA, "t.example. 60 IN A 192.0.2.1")
	c := &client{resolver: z.addr, timeout: 150 * time.Millisecond}

	for _, tc := range []struct {
		name, want string
		setup      func()
	}{
		{"servfail", ResultServFail, func() { z.forceRcode(api, dns.TypeSRV, dns.RcodeServerFailure) }},
		{"refused", ResultRefused, func() { z.forceRcode(api, dns.TypeSRV, dns.RcodeRefused) }},
		{"target servfail fails the lookup", ResultServFail, func() { z.forceRcode("t.example.", dns.TypeAAAA, dns.RcodeServerFailure) }},
		{"other rcode", ResultError, func() { z.forceRcode(api, dns.TypeSRV, dns.RcodeNotImplemented) }},
		{"no answer", ResultTimeout, func() { z.setDrop(true) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup()
			defer func() {
				z.forceRcode(api, dns.TypeSRV, dns.RcodeSuccess)
				z.forceRcode("t.example.", dns.TypeAAAA, dns.RcodeSuccess)
				z.setDrop(false)
			}()
			_, err := c.lookup(t.Context(), srvSource(api, z.addr))
			require.Error(t, err)
			require.Equal(t, tc.want, classify(err), "%v", err)
			require.Contains(t, err.Error(), z.addr, "the error names the server")
		})
	}

	z.stop()
	_, err := c.lookup(t.Context(), srvSource(api, z.addr))
	require.Error(t, err)
	require.Equal(t, ResultError, classify(err))
	require.Contains(t, err.Error(), "refused", "a stopped server's port refuses at once: %v", err)
}

// TestTruncationFallsBackToTCP: a truncated UDP answer is asked again over
// TCP, both when the server forces it and when 100 members do not fit.
func TestTruncationFallsBackToTCP(t *testing.T) {
	z := startDNS(t)
	z.set(api, dns.TypeSRV, api+" 60 IN SRV 1 1 80 t.example.")
	z.setExtra(api, dns.TypeSRV, "t.example. 60 IN A 192.0.2.1")
	z.setTruncate(true)
	out, err := testClient(z.addr).lookup(t.Context(), srvSource(api, z.addr))
	require.NoError(t, err)
	require.Equal(t, []string{"http://192.0.2.1:80"}, urls(out.members))
	require.Equal(t, []string{"udp SRV " + api, "tcp SRV " + api}, z.seen())

	z.setTruncate(false)
	setSRVMembers(t, z, api, 100)
	out, err = testClient(z.addr).lookup(t.Context(), srvSource(api, z.addr))
	require.NoError(t, err)
	require.Len(t, out.members, 100)
	require.Equal(t, []string{"udp SRV " + api, "tcp SRV " + api}, z.seen()[2:], "100 SRV records with addresses exceed 1232 bytes")
}

// setSRVMembers serves n SRV records with their addresses in the
// additional section.
func setSRVMembers(t testing.TB, z *testDNS, name string, n int) {
	var srv, extra []string
	for i := range n {
		target := fmt.Sprintf("node-%03d.node.dc1.consul.", i)
		srv = append(srv, fmt.Sprintf("%s 60 IN SRV 1 1 %d %s", name, 8000+i, target))
		extra = append(extra, fmt.Sprintf("%s 60 IN A 10.1.%d.%d", target, i/250, i%250+1))
	}
	z.set(name, dns.TypeSRV, srv...)
	z.setExtra(name, dns.TypeSRV, extra...)
}

// TestServersInTurn: a failing server is passed over for the next one.
func TestServersInTurn(t *testing.T) {
	bad, good := startDNS(t), startDNS(t)
	bad.forceRcode("web.example.", dns.TypeA, dns.RcodeServerFailure)
	bad.forceRcode("web.example.", dns.TypeAAAA, dns.RcodeServerFailure)
	good.set("web.example.", dns.TypeA, "web.example. 60 IN A 192.0.2.1")
	c := &client{timeout: time.Second}
	name := dnsmessage.MustNewName("web.example.")
	r, err := c.resolve(t.Context(), []string{bad.addr, good.addr}, name)
	require.NoError(t, err)
	require.Equal(t, "192.0.2.1", r.addrs[0].String())

	_, err = c.resolve(t.Context(), []string{bad.addr}, name)
	require.ErrorIs(t, err, ErrServFail)
	_, err = c.resolve(t.Context(), nil, name)
	require.ErrorContains(t, err, "no DNS server")
}

func TestParseResolvConf(t *testing.T) {
	got := parseResolvConf(strings.NewReader(`# comment
search default.svc.cluster.local svc.cluster.local
nameserver 10.96.0.10
nameserver   fe80::1%eth0
nameserver not-an-ip
options ndots:5
nameserver ::1
`))
	require.Equal(t, []string{"10.96.0.10:53", "[fe80::1%eth0]:53", "[::1]:53"}, got)
	require.Equal(t, []string{"127.0.0.1:53", "[::1]:53"}, parseResolvConf(strings.NewReader("search x\n")))
	require.Equal(t, []string{"127.0.0.1:53", "[::1]:53"}, readResolvConf("/nonexistent/resolv.conf"))
	c := &client{resolvConf: "/nonexistent/resolv.conf"}
	require.Equal(t, []string{"127.0.0.1:53", "[::1]:53"}, c.servers())
	c.resolver = "127.0.0.1:8600"
	require.Equal(t, []string{"127.0.0.1:8600"}, c.servers())
}

// TestResponseMatching: a datagram that is not the answer to our query
// (another ID, another question, a query rather than a response) is
// skipped, and a truncated one sends us to TCP.
func TestResponseMatching(t *testing.T) {
	q := dnsmessage.Question{Name: dnsmessage.MustNewName("web.example."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}
	pack := func(h dnsmessage.Header, q dnsmessage.Question) []byte {
		b := dnsmessage.NewBuilder(nil, h)
		require.NoError(t, b.StartQuestions())
		require.NoError(t, b.Question(q))
		out, err := b.Finish()
		require.NoError(t, err)
		return out
	}
	other := q
	other.Type = dnsmessage.TypeAAAA
	_, err := response(pack(dnsmessage.Header{ID: 7, Response: true}, q), 8, q, true)
	require.Equal(t, errNotOurs, err)
	_, err = response(pack(dnsmessage.Header{ID: 7}, q), 7, q, true)
	require.Equal(t, errNotOurs, err)
	_, err = response(pack(dnsmessage.Header{ID: 7, Response: true}, other), 7, q, true)
	require.Equal(t, errNotOurs, err)
	_, err = response([]byte{1, 2, 3}, 7, q, true)
	require.Equal(t, errNotOurs, err)
	_, err = response(pack(dnsmessage.Header{ID: 7, Response: true, Truncated: true}, q), 7, q, true)
	require.Equal(t, errTruncated, err)
	upper := q
	upper.Name = dnsmessage.MustNewName("WEB.example.")
	m, err := response(pack(dnsmessage.Header{ID: 7, Response: true, Truncated: true}, upper), 7, q, false)
	require.NoError(t, err, "names match case-insensitively; TC over TCP is taken as it is")
	require.Equal(t, uint16(7), m.Header.ID)
}

// TestSkipsStrayDatagrams: over UDP, a stray datagram before the answer is
// skipped rather than taken as a failure.
func TestSkipsStrayDatagrams(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer pc.Close()
	go func() {
		buf := make([]byte, 512)
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		req := new(dns.Msg)
		if req.Unpack(buf[:n]) != nil {
			return
		}
		stray := new(dns.Msg).SetReply(req)
		stray.Id++
		b, _ := stray.Pack()
		_, _ = pc.WriteTo(b, from)
		_, _ = pc.WriteTo([]byte("junk"), from)
		ans := new(dns.Msg).SetReply(req)
		rr, _ := dns.NewRR("web.example. 60 IN A 192.0.2.5")
		ans.Answer = []dns.RR{rr}
		b, _ = ans.Pack()
		_, _ = pc.WriteTo(b, from)
	}()
	c := &client{timeout: time.Second}
	q := dnsmessage.Question{Name: dnsmessage.MustNewName("web.example."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	m, err := c.exchange(ctx, pc.LocalAddr().String(), q)
	require.NoError(t, err)
	require.Len(t, m.Answers, 1)
}
