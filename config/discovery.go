package config

import (
	"fmt"
	"net/netip"
	"strings"
)

// Discovery types: what a DNS source looks up.
const (
	DiscoverySRV = "srv" // SRV records: target, port, weight, priority
	DiscoveryA   = "a"   // A and AAAA records, with the configured port
)

// SourceName is how lbd names the source (and the members it owns) in the
// admin API, logs and metrics: "dns:srv:NAME" or "dns:a:NAME", with the name
// in NormalizeDNSName's form.
func (d Discovery) SourceName() string {
	name, err := NormalizeDNSName(d.DNS)
	if err != nil {
		name = d.DNS
	}
	return "dns:" + d.Type + ":" + name
}

// Validate checks one discovery entry on its own; paths in the error are
// relative ("refresh"), as Backend.Validate's are.
func (d Discovery) Validate() error {
	var k checker
	k.discovery("", d)
	return k.err()
}

// NormalizeDNSName returns name lowercased and without its trailing dot, or
// an error saying why it is not a DNS name. Names are always absolute: lbd
// does not apply resolv.conf's search list, so "web" never quietly becomes
// "web.default.svc.cluster.local" on one machine and something else on the
// next.
func NormalizeDNSName(name string) (string, error) {
	n := strings.ToLower(strings.TrimSuffix(name, "."))
	switch {
	case n == "":
		return "", fmt.Errorf("must be a DNS name such as \"_http._tcp.api.service.consul\", got %q", name)
	case len(n) > 253:
		return "", fmt.Errorf("%q is longer than the 253 characters of a DNS name", describeName(name))
	}
	if _, err := netip.ParseAddr(n); err == nil {
		return "", fmt.Errorf("%q is an IP address, not a name; list it under backends instead", name)
	}
	for label := range strings.SplitSeq(n, ".") {
		switch {
		case label == "":
			return "", fmt.Errorf("%q has an empty label (two dots in a row, or a leading dot)", name)
		case len(label) > 63:
			return "", fmt.Errorf("%q has a label longer than 63 characters", describeName(name))
		case strings.ContainsFunc(label, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_')
		}):
			return "", fmt.Errorf("%q is not a DNS name (letters, digits, \"-\", \"_\" and \".\" only; international names go in their xn-- form)", describeName(name))
		}
	}
	return n, nil
}

// describeName shortens a long name for an error message.
func describeName(name string) string {
	if len(name) > 64 {
		return strings.ToValidUTF8(name[:61], "") + "..."
	}
	return name
}

// discoveries checks a list of sources (the top-level "discovery", or a
// pool's), path being the list's JSON path. One name of one type may appear
// once: two sources would own the same members.
func (k *checker) discoveries(path string, list []Discovery) {
	seen := map[string]int{}
	for i, d := range list {
		p := fmt.Sprintf("%s[%d]", path, i)
		k.discovery(p+".", d)
		name, err := NormalizeDNSName(d.DNS)
		if err != nil {
			continue
		}
		key := d.Type + ":" + name
		if j, dup := seen[key]; dup {
			k.add(p+".dns", "%q of type %s is already %s[%d]; list each name once per type", d.DNS, d.Type, path, j)
		} else {
			seen[key] = i
		}
	}
}

// discovery checks d, with prefix before each field name.
func (k *checker) discovery(prefix string, d Discovery) {
	if _, err := NormalizeDNSName(d.DNS); err != nil {
		k.add(prefix+"dns", "%v", err)
	}
	k.oneOf(prefix+"type", d.Type, DiscoverySRV, DiscoveryA)
	switch {
	case d.Type == DiscoveryA && d.Port == 0:
		k.add(prefix+"port", "is required for type a: A and AAAA records carry no port")
	case d.Type == DiscoveryA:
		k.intIn(prefix+"port", d.Port, 1, 65535)
	case d.Type == DiscoverySRV && d.Port != 0:
		k.add(prefix+"port", "must be left out for type srv: each SRV record carries its member's port")
	}
	if d.Resolver != "" {
		if ap, err := netip.ParseAddrPort(d.Resolver); err != nil {
			k.add(prefix+"resolver", "%q is not IP:port, as in \"127.0.0.1:8600\" or \"[::1]:53\" (empty means /etc/resolv.conf)", d.Resolver)
		} else if ap.Port() == 0 {
			k.add(prefix+"resolver", "%q has port 0; DNS servers listen on 1 to 65535 (53 as a rule)", d.Resolver)
		}
	}
	if d.Refresh <= 0 {
		k.positive(prefix+"refresh", d.Refresh)
	} else if d.Refresh.D() < MinDiscoveryRefresh {
		k.add(prefix+"refresh", "must be at least %s, lbd's floor between two lookups of a name, got %s", MinDiscoveryRefresh, d.Refresh.D())
	}
	k.oneOf(prefix+"scheme", d.Scheme, "http", "https")
	k.oneOf(prefix+"protocol", d.Protocol, "http1", "h2c", "h2")
	switch {
	case d.Protocol == "h2" && d.Scheme == "http":
		k.add(prefix+"protocol", "h2 needs scheme https; use h2c for cleartext HTTP/2")
	case d.Protocol == "h2c" && d.Scheme == "https":
		k.add(prefix+"protocol", "h2c is cleartext HTTP/2 and needs scheme http; use h2 with https")
	}
	k.intIn(prefix+"weight", d.Weight, 1, MaxWeight)
	if d.MaxInflight < 0 {
		k.add(prefix+"max_inflight", "must be 0 (no cap) or more, got %d", d.MaxInflight)
	}
	if d.Scheme != "https" && d.CAFile != "" {
		k.add(prefix+"ca_file", "is only used with scheme https")
	}
	if d.Scheme != "https" && d.ServerName != "" {
		k.add(prefix+"server_name", "is only used with scheme https")
	}
}
