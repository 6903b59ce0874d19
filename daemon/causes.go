package daemon

import (
	"fmt"
	"strings"

	"github.com/lbd/lbd/backendactor"
	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/events"
	"github.com/lbd/lbd/routing"
)

// why is where a routing change the owner carries out came from; each of
// its steps tells the backend actors the cause their history records
// ("admin drain", "config reload: no longer in the file", "dns: left the
// SRV set of _http._tcp.api.service.consul").
type why struct {
	kind whyKind
	rev  int64 // whyFleet: the etcd revision applied
}

type whyKind uint8

const (
	kindStart     whyKind = iota // lbd starting: the config file and the state file
	kindAdmin                    // an admin call
	kindReload                   // the config file read again
	kindDiscovery                // a discovery source's new answer
	kindFleet                    // the fleet's shared state moved (an admin call on some replica, this one included)
)

var (
	whyStart     = why{kind: kindStart}
	whyAdmin     = why{kind: kindAdmin}
	whyReload    = why{kind: kindReload}
	whyDiscovery = why{kind: kindDiscovery}
)

func whyFleet(rev int64) why { return why{kind: kindFleet, rev: rev} }

// Acts of the routing owner on a backend.
const (
	actAdd     = "add"
	actRemove  = "remove"
	actReplace = "replace"
	actDrain   = "drain"
	actUndrain = "undrain"
)

// cause says why the owner acts on backend b.
func (w why) cause(act string, b routing.Backend) string {
	switch w.kind {
	case kindAdmin:
		return "admin " + act
	case kindFleet:
		return fmt.Sprintf("admin %s (fleet, etcd revision %d)", act, w.rev)
	case kindDiscovery:
		if routing.Discovery(b.Source) && (act == actAdd || act == actRemove) {
			return discoveryCause(b.Source, act == actAdd)
		}
		return "discovery: " + act
	case kindReload:
		switch act {
		case actAdd:
			return "config reload: added to the file"
		case actRemove:
			return "config reload: no longer in the file"
		case actReplace:
			return "config reload: protocol or TLS trust changed; a new actor replaces the old one"
		}
		return "config reload: " + act
	}
	switch {
	case act == actDrain:
		return "drained in the saved state"
	case b.Source == routing.SourceAdmin:
		return "restored from the saved state (added by admin)"
	case routing.Discovery(b.Source):
		return discoveryCause(b.Source, true)
	}
	return "in the config file"
}

// discoveryCause words a discovery source's verdict on a member: source
// is "dns:srv:NAME" or "dns:a:NAME" (config.Discovery.SourceName).
func discoveryCause(source string, joined bool) string {
	verb := "left"
	if joined {
		verb = "joined"
	}
	kind, name, ok := strings.Cut(strings.TrimPrefix(source, "dns:"), ":")
	if !ok || !strings.HasPrefix(source, "dns:") {
		return source + ": " + verb
	}
	set := "SRV"
	if kind == config.DiscoveryA {
		set = "A/AAAA"
	}
	return fmt.Sprintf("dns: %s the %s set of %s", verb, set, name)
}

// transitionSink is the pool's backends' OnTransition: each transition
// becomes an event in the events actor's history. Record never waits.
func (d *Daemon) transitionSink(pool string) func(backendactor.Transition) {
	return func(t backendactor.Transition) {
		d.events.Record(events.Event{Time: t.At, Pool: pool, Backend: t.URL, Name: t.Name,
			Kind: t.Kind, From: t.From, To: t.To, Cause: t.Cause})
	}
}
