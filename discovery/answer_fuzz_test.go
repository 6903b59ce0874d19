package discovery

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/lbd/lbd/config"
)

// FuzzParseAnswer feeds arbitrary bytes through what a lookup does with an
// answer: decode (dnsmessage), parseAnswer, lowestPriority and the member
// set. It must never panic, and any members it makes must be backends lbd
// can name: normalised URLs, in order, once each, with weights in range.
func FuzzParseAnswer(f *testing.F) {
	seed := func(qtype uint16, rcode int, rrs []string, extra []string) {
		m := new(dns.Msg)
		m.SetQuestion(api, qtype)
		m.Response, m.Rcode = true, rcode
		for _, s := range rrs {
			rr, err := dns.NewRR(s)
			require.NoError(f, err)
			m.Answer = append(m.Answer, rr)
		}
		for _, s := range extra {
			rr, err := dns.NewRR(s)
			require.NoError(f, err)
			m.Extra = append(m.Extra, rr)
		}
		b, err := m.Pack()
		require.NoError(f, err)
		f.Add(b, "https")
	}
	seed(dns.TypeSRV, dns.RcodeSuccess,
		[]string{api + " 30 IN SRV 10 0 8080 a.node.", api + " 30 IN SRV 10 5 8081 b.node.", api + " 9 IN SRV 20 1 1 c.node."},
		[]string{"a.node. 30 IN A 10.0.0.1", "b.node. 5 IN AAAA 2001:db8::1", "b.node. 5 IN AAAA ::ffff:10.0.0.1"})
	seed(dns.TypeA, dns.RcodeSuccess, []string{api + " 30 IN CNAME x.", "x. 10 IN A 192.0.2.1", "x. 10 IN A 0.0.0.0"}, nil)
	seed(dns.TypeSRV, dns.RcodeNameError, nil, nil)
	seed(dns.TypeSRV, dns.RcodeSuccess, []string{api + " 30 IN SRV 0 0 0 ."}, nil)
	f.Add([]byte{}, "http")

	f.Fuzz(func(t *testing.T, data []byte, scheme string) {
		var m dnsmessage.Message
		if m.Unpack(data) != nil || len(m.Questions) == 0 {
			return
		}
		if scheme != "https" {
			scheme = "http"
		}
		q := m.Questions[0]
		r := parseAnswer(&m, q)
		require.True(t, !r.ttl.set || r.ttl.d >= 0)

		src := config.DefaultDiscovery()
		src.DNS, src.Scheme, src.Weight = "x.example", scheme, 7
		set := newMemberSet(src)
		recs := lowestPriority(r.srv)
		for _, rec := range recs {
			require.Equal(t, recs[0].priority, rec.priority)
			require.NotEqual(t, ".", rec.target)
			for _, a := range r.extra[rec.target].addrs {
				set.add(a, rec.port, srvWeight(rec.weight, src.Weight), rec.target)
			}
		}
		for _, o := range r.srv {
			if o.target != "." && o.port != 0 && len(recs) > 0 {
				require.GreaterOrEqual(t, o.priority, recs[0].priority, "only the lowest priority is kept")
			}
		}
		for _, a := range r.addrs {
			set.add(a, 8080, src.Weight, "x.example")
		}
		ms := set.list()
		seen := map[string]bool{}
		require.True(t, slices.IsSortedFunc(ms, compareMembers), "by address, then port")
		for _, mb := range ms {
			n, err := config.NormalizeURL(mb.URL)
			require.NoError(t, err, mb.URL)
			require.Equal(t, n, mb.URL)
			require.False(t, seen[mb.URL], "one member per URL")
			seen[mb.URL] = true
			require.True(t, mb.Weight >= 1 && mb.Weight <= config.MaxWeight, "weight %d", mb.Weight)
			require.NoError(t, mb.Backend().Validate())
		}
	})
}

// compareMembers orders members as memberSet.list does, from their URLs.
func compareMembers(a, b Member) int {
	ka, kb := urlKey(a.URL), urlKey(b.URL)
	if c := ka.addr.Compare(kb.addr); c != 0 {
		return c
	}
	return int(ka.port) - int(kb.port)
}

func urlKey(u string) memberKey {
	_, hostport, _ := strings.Cut(u, "://")
	ap := netip.MustParseAddrPort(hostport)
	return memberKey{ap.Addr(), ap.Port()}
}
