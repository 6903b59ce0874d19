package discovery

import (
	"net/netip"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// records is what one response says about its question: the records of
// the question's type for its name (CNAMEs followed), the addresses in the
// additional section, and the lowest TTL among the records used.
type records struct {
	nx    bool // NXDOMAIN: the name does not exist
	srv   []srvRecord
	addrs []netip.Addr
	extra map[string]addrSet // additional A/AAAA by lowercased owner name ("host.example.")
	ttl   ttl                // of srv or addrs (and the CNAMEs leading there), or the SOA's when negative
}

// srvRecord is what lbd uses of an SRV record; target is lowercased and
// keeps its trailing dot, as names in extra do.
type srvRecord struct {
	target                 string
	priority, weight, port uint16
}

// addrSet is a name's addresses and their lowest TTL.
type addrSet struct {
	addrs []netip.Addr
	ttl   ttl
}

// ttl is an optional record TTL: a negative answer without an SOA, or one
// that names no records, has none, and then refresh alone decides.
type ttl struct {
	d   time.Duration
	set bool
}

// min keeps the lower of two TTLs; an unset one does not count.
func (t ttl) min(o ttl) ttl {
	if !t.set || (o.set && o.d < t.d) {
		return o
	}
	return t
}

func ttlOf(seconds uint32) ttl { return ttl{d: time.Duration(seconds) * time.Second, set: true} }

// parseAnswer reads m, the answer to q, which the caller checked is NOERROR
// or NXDOMAIN. Records of another class, or for names outside q's CNAME
// chain, are ignored: a server may add what it likes, and only what
// answers the question is believed.
func parseAnswer(m *dnsmessage.Message, q dnsmessage.Question) records {
	r := records{nx: m.Header.RCode == dnsmessage.RCodeNameError}
	chain := map[string]bool{strings.ToLower(q.Name.String()): true}
	var t ttl
	// Follow CNAMEs in answer order or not: each pass adds the targets of
	// the names already reached; the answer section bounds the passes.
	for range len(m.Answers) {
		grew := false
		for _, a := range m.Answers {
			c, ok := a.Body.(*dnsmessage.CNAMEResource)
			if !ok || a.Header.Class != dnsmessage.ClassINET || !chain[strings.ToLower(a.Header.Name.String())] {
				continue
			}
			if target := strings.ToLower(c.CNAME.String()); !chain[target] {
				chain[target] = true
				t = t.min(ttlOf(a.Header.TTL))
				grew = true
			}
		}
		if !grew {
			break
		}
	}
	for _, a := range m.Answers {
		if a.Header.Class != dnsmessage.ClassINET || a.Header.Type != q.Type || !chain[strings.ToLower(a.Header.Name.String())] {
			continue
		}
		switch b := a.Body.(type) {
		case *dnsmessage.SRVResource:
			r.srv = append(r.srv, srvRecord{strings.ToLower(b.Target.String()), b.Priority, b.Weight, b.Port})
		case *dnsmessage.AResource:
			r.addrs = append(r.addrs, netip.AddrFrom4(b.A))
		case *dnsmessage.AAAAResource:
			r.addrs = append(r.addrs, netip.AddrFrom16(b.AAAA).Unmap())
		default:
			continue
		}
		t = t.min(ttlOf(a.Header.TTL))
	}
	if len(r.srv) == 0 && len(r.addrs) == 0 {
		// A negative answer lives as long as its SOA says (RFC 2308 §5).
		t = ttl{}
		for _, a := range m.Authorities {
			if soa, ok := a.Body.(*dnsmessage.SOAResource); ok {
				t = t.min(ttlOf(min(a.Header.TTL, soa.MinTTL)))
			}
		}
	}
	r.ttl = t
	if q.Type == dnsmessage.TypeSRV {
		r.extra = additionalAddrs(m.Additionals)
	}
	return r
}

// additionalAddrs indexes the A and AAAA records of an additional section.
func additionalAddrs(rs []dnsmessage.Resource) map[string]addrSet {
	var out map[string]addrSet
	for _, a := range rs {
		var addr netip.Addr
		switch b := a.Body.(type) {
		case *dnsmessage.AResource:
			addr = netip.AddrFrom4(b.A)
		case *dnsmessage.AAAAResource:
			addr = netip.AddrFrom16(b.AAAA).Unmap() // ::ffff:a.b.c.d is the A record's host
		default:
			continue
		}
		if a.Header.Class != dnsmessage.ClassINET {
			continue
		}
		if out == nil {
			out = map[string]addrSet{}
		}
		name := strings.ToLower(a.Header.Name.String())
		s := out[name]
		s.addrs = append(s.addrs, addr)
		s.ttl = s.ttl.min(ttlOf(a.Header.TTL))
		out[name] = s
	}
	return out
}
