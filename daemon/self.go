package daemon

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"

	"github.com/lbd/lbd/routing"
)

// A backend that is lbd's own data listener turns every request into a
// loop (each pass adds a connection, until the descriptors run out). The
// Via check of the data plane answers such a request 508, whatever the
// path; this check refuses the configuration before any request: a
// config file at start or reload, an admin add. It belongs to the daemon,
// not to routing.Apply, because "self" is a property of the sockets lbd
// has bound, which the routing data knows nothing about; the owner runs it
// on the table a change would produce, so every way in (start, reload,
// admin) is judged alike.
//
// Only what can be decided without DNS is checked: literal addresses and
// "localhost". A name that resolves to lbd is left to the Via check.

// errSelfBackend is the refusal; the admin API answers it 400.
type errSelfBackend struct{ pool, url, listen string }

func (e errSelfBackend) Error() string {
	return fmt.Sprintf("pool %s: backend %s is this lbd's own listener (%s): forwarding to it would loop", e.pool, e.url, e.listen)
}

func (e errSelfBackend) Is(target error) bool { return target == routing.ErrInvalid }

// refuseSelf returns an errSelfBackend for the first backend of t that is
// one of the data listeners in listens ("host:port" as configured or as
// bound).
func refuseSelf(t *routing.Table, listens []string) error {
	var local func() []netip.Addr // the machine's addresses, read once and only if needed
	for _, p := range t.Pools {
		for _, b := range p.Backends {
			for _, l := range listens {
				if isListener(b.URL, l, &local) {
					return errSelfBackend{pool: p.Name, url: b.URL, listen: l}
				}
			}
		}
	}
	return nil
}

// isListener reports whether backendURL reaches the listener at listen.
func isListener(backendURL, listen string, local *func() []netip.Addr) bool {
	u, err := url.Parse(backendURL)
	if err != nil {
		return false
	}
	lhost, lport, err := net.SplitHostPort(listen)
	if err != nil || lport == "0" || u.Port() != lport {
		return false
	}
	bhost := u.Hostname()
	baddr, berr := netip.ParseAddr(bhost)
	loopback := strings.EqualFold(bhost, "localhost") || (berr == nil && baddr.Unmap().IsLoopback())
	laddr, lerr := netip.ParseAddr(lhost)
	switch {
	case lhost == "" || (lerr == nil && laddr.IsUnspecified()): // every address of the machine
		if loopback {
			return true
		}
		if berr != nil {
			return false
		}
		if *local == nil {
			addrs := machineAddrs()
			*local = func() []netip.Addr { return addrs }
		}
		for _, a := range (*local)() {
			if a == baddr.Unmap() {
				return true
			}
		}
		return false
	case strings.EqualFold(lhost, "localhost"):
		return loopback
	case lerr == nil && berr == nil:
		return baddr.Unmap() == laddr.Unmap()
	case lerr == nil: // backend "localhost": the usual loopback addresses
		l := laddr.Unmap()
		return strings.EqualFold(bhost, "localhost") && (l == netip.AddrFrom4([4]byte{127, 0, 0, 1}) || l == netip.IPv6Loopback())
	}
	return false
}

func machineAddrs() []netip.Addr {
	ifAddrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range ifAddrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out
}

// dataListens are the data-plane addresses to compare backends with:
// the configured one and, once bound, the bound one (":0" is only known
// then).
func (d *Daemon) dataListens(configured string) []string {
	out := []string{configured}
	if s := d.started.Load(); s != nil {
		out = append(out, s.dataAddr())
	}
	return out
}
