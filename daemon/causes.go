package daemon

import (
	"github.com/lbd/lbd/backendactor"
	"github.com/lbd/lbd/events"
	"github.com/lbd/lbd/routing"
)

// why is where a routing change the owner carries out came from; each of
// its steps tells the backend actors the cause their history records
// ("admin drain", "config reload: no longer in the file").
type why uint8

const (
	whyStart  why = iota // lbd starting: the config file and the state file
	whyAdmin             // an admin call (or what forwards one, the fleet)
	whyReload            // the config file read again
)

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
	switch w {
	case whyAdmin:
		return "admin " + act
	case whyReload:
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
		return "drained in the state file"
	case b.Source == routing.SourceAdmin:
		return "restored from the state file (added by admin)"
	case routing.Discovery(b.Source):
		return b.Source + ": in the answer"
	}
	return "in the config file"
}

// transitionSink is the pool's backends' OnTransition: each transition
// becomes an event in the events actor's history. Record never waits.
func (d *Daemon) transitionSink(pool string) func(backendactor.Transition) {
	return func(t backendactor.Transition) {
		d.events.Record(events.Event{Time: t.At, Pool: pool, Backend: t.URL, Name: t.Name,
			Kind: t.Kind, From: t.From, To: t.To, Cause: t.Cause})
	}
}
