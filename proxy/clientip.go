package proxy

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
)

// NewClientIP returns the function that names a request's client for the
// per-client rate limit, the sticky "ip" key and the access log.
//
// The client is the connection's peer, unless the peer is one of the trusted
// proxies (IP addresses or CIDR prefixes): then X-Forwarded-For is read from
// right to left, skipping the trusted hops, and the first address that is
// not trusted is the client. Entries to the left of it were written by the
// client itself and can be forged, so they are never used; an entry that is
// not an address stops the walk at the last good one. Without trusted
// proxies X-Forwarded-For is ignored, so no client can pick its own rate
// limit bucket by sending the header.
func NewClientIP(trusted []string) (func(*http.Request) string, error) {
	t, err := parseTrustedSet(trusted)
	if err != nil {
		return nil, err
	}
	if len(t) == 0 {
		return PeerIP, nil
	}
	return t.clientIP, nil
}

// ClientIPs names clients as NewClientIP's function does, by trusted
// proxies that Set replaces while requests run (admission.trusted_proxies
// on reload). Its ClientIP method is a function for Options.ClientIP.
type ClientIPs struct {
	trusted atomic.Pointer[trustedSet]
}

// NewClientIPs returns a holder of the trusted proxies.
func NewClientIPs(trusted []string) (*ClientIPs, error) {
	c := &ClientIPs{}
	if err := c.Set(trusted); err != nil {
		return nil, err
	}
	return c, nil
}

// Set replaces the trusted proxies; requests named after it returns use
// them. An entry that is not an address or prefix changes nothing.
func (c *ClientIPs) Set(trusted []string) error {
	t, err := parseTrustedSet(trusted)
	if err != nil {
		return err
	}
	c.trusted.Store(&t)
	return nil
}

// ClientIP names r's client by the trusted proxies set last: one atomic
// load, then NewClientIP's walk.
func (c *ClientIPs) ClientIP(r *http.Request) string {
	t := *c.trusted.Load()
	if len(t) == 0 {
		return PeerIP(r)
	}
	return t.clientIP(r)
}

func parseTrustedSet(trusted []string) (trustedSet, error) {
	prefixes := make(trustedSet, 0, len(trusted))
	for _, s := range trusted {
		p, err := parseTrusted(s)
		if err != nil {
			return nil, err
		}
		prefixes = append(prefixes, p)
	}
	return prefixes, nil
}

func parseTrusted(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("trusted proxy %q: %w", s, err)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("trusted proxy %q is not an IP address or CIDR prefix", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

type trustedSet []netip.Prefix

func (t trustedSet) contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (t trustedSet) clientIP(r *http.Request) string {
	peer := PeerIP(r)
	addr, err := netip.ParseAddr(peer)
	if err != nil || !t.contains(addr) {
		return peer
	}
	client := addr.Unmap()
	vals := r.Header.Values("X-Forwarded-For")
	for i := len(vals) - 1; i >= 0; i-- {
		v := vals[i]
		for v != "" {
			var hop string
			if c := strings.LastIndexByte(v, ','); c >= 0 {
				v, hop = v[:c], v[c+1:]
			} else {
				v, hop = "", v
			}
			a, ok := parseHop(strings.TrimSpace(hop))
			if !ok {
				return client.String()
			}
			client = a
			if !t.contains(a) {
				return a.String()
			}
		}
	}
	return client.String() // every hop is trusted: the leftmost is as far as we can see
}

// parseHop reads one X-Forwarded-For entry: an address, or an address with
// a port ("192.0.2.1:4711", "[2001:db8::1]:4711") as some proxies write it.
func parseHop(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}
