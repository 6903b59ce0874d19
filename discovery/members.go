package discovery

import (
	"cmp"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/lbd/lbd/config"
)

// Member is one discovered backend, in the terms of a static one.
type Member struct {
	// URL is scheme://ADDR:PORT, in config.NormalizeURL's form (IPv6 in brackets).
	URL         string `json:"url"`
	Weight      int    `json:"weight"`
	MaxInflight int    `json:"max_inflight"`
	Protocol    string `json:"protocol"`
	CAFile      string `json:"ca_file,omitempty"`
	// ServerName is the TLS server name of an https member: the configured
	// server_name, else the SRV target or the A name.
	ServerName string `json:"server_name,omitempty"`
}

// Backend returns m as the config of a static backend.
func (m Member) Backend() config.Backend {
	return config.Backend{
		URL: m.URL, Weight: m.Weight, MaxInflight: m.MaxInflight, Protocol: m.Protocol,
		CAFile: m.CAFile, ServerName: m.ServerName,
	}
}

// memberKey orders members by address, then port.
type memberKey struct {
	addr netip.Addr
	port uint16
}

// memberSet collects members, one per URL, and returns them in order.
type memberSet struct {
	src  config.Discovery
	byID map[memberKey]Member
}

func newMemberSet(src config.Discovery) *memberSet {
	return &memberSet{src: src, byID: map[memberKey]Member{}}
}

// add adds addr:port with weight; host is the name the address came from,
// the TLS server name of an https member. Addresses no backend can have
// (unspecified, multicast) are skipped. A URL offered twice keeps the
// higher weight, and the first host.
func (s *memberSet) add(addr netip.Addr, port uint16, weight int, host string) {
	if !addr.IsValid() || addr.IsUnspecified() || addr.IsMulticast() || port == 0 {
		return
	}
	k := memberKey{addr, port}
	if m, ok := s.byID[k]; ok {
		m.Weight = max(m.Weight, weight)
		s.byID[k] = m
		return
	}
	m := Member{
		URL:    s.src.Scheme + "://" + net.JoinHostPort(addr.String(), strconv.Itoa(int(port))),
		Weight: weight, MaxInflight: s.src.MaxInflight, Protocol: s.src.Protocol,
	}
	if s.src.Scheme == "https" {
		m.CAFile, m.ServerName = s.src.CAFile, s.src.ServerName
		if m.ServerName == "" {
			m.ServerName = strings.TrimSuffix(strings.ToLower(host), ".")
		}
	}
	s.byID[k] = m
}

// list returns the members sorted by address then port: the same records
// always give the same slice, so a change is a real change.
func (s *memberSet) list() []Member {
	keys := make([]memberKey, 0, len(s.byID))
	for k := range s.byID {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b memberKey) int {
		return cmp.Or(a.addr.Compare(b.addr), cmp.Compare(a.port, b.port))
	})
	out := make([]Member, len(keys))
	for i, k := range keys {
		out[i] = s.byID[k]
	}
	return out
}

// lowestPriority keeps the SRV records of the lowest priority present and
// drops the "service not available" target "." (RFC 2782). Lower
// priorities are where clients must go first; the others are backups that
// lbd's own health checks and retries make unnecessary to fall back to.
func lowestPriority(rs []srvRecord) []srvRecord {
	var out []srvRecord
	for _, r := range rs {
		if r.target == "." || r.port == 0 {
			continue
		}
		switch {
		case len(out) == 0 || r.priority == out[0].priority:
			out = append(out, r)
		case r.priority < out[0].priority:
			out = append(out[:0], r)
		}
	}
	return out
}

// srvWeight is a member's weight from its record's: 0 (which RFC 2782
// reserves for "pick rarely") counts as 1, scaled by the configured weight
// and capped at config.MaxWeight.
func srvWeight(record uint16, scale int) int {
	return min(max(int(record), 1)*scale, config.MaxWeight)
}
