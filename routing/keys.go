package routing

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/lbd/lbd/config"
)

// An Overlay is stored in a fleet's etcd prefix one entry per key, so that
// two admin changes to different facts never touch the same key and two
// changes to the same fact race on one key's revision (the loser gets 409):
//
//	state/pools/<pool>/backends/<url, path-escaped>   a BackendOverlay
//	state/pools/<pool>/policy                        a Policy
//	state/pools/<pool>/canary                        a config.Canary
//
// Keys are relative to the fleet's prefix; values are JSON, checked on the
// way in as the state file's entries are.

// StateKeyPrefix is where the overlay lives under the fleet's prefix.
const StateKeyPrefix = "state/pools/"

// Keys returns the overlay as keys and their JSON values.
func (ov Overlay) Keys() map[string][]byte {
	out := map[string][]byte{}
	put := func(key string, v any) {
		data, _ := json.Marshal(v) // plain data: cannot fail
		out[key] = data
	}
	for pool, po := range ov.Pools {
		base := StateKeyPrefix + pool + "/"
		if po.Policy != nil {
			put(base+"policy", po.Policy)
		}
		if po.Canary != nil {
			put(base+"canary", po.Canary)
		}
		for u, b := range po.Backends {
			put(base+"backends/"+url.PathEscape(u), b)
		}
	}
	return out
}

// OverlayFromKeys rebuilds an overlay from keys and values. An entry that
// cannot be read or fails the config file's rules is left out and named in
// the problems, and the rest is kept; keys outside the schema are named
// too, so a foreign writer's mistake is visible rather than silent.
func OverlayFromKeys(kvs map[string][]byte) (Overlay, []string) {
	ov := Overlay{}
	var probs []string
	pools := map[string]PoolOverlay{}
	for _, key := range sortedKeys(kvs) {
		value := kvs[key]
		rest, ok := strings.CutPrefix(key, StateKeyPrefix)
		pool, item, ok2 := strings.Cut(rest, "/")
		if !ok || !ok2 || pool == "" {
			probs = append(probs, fmt.Sprintf("%s: not a key of lbd's fleet state", key))
			continue
		}
		po := pools[pool]
		if po.Backends == nil {
			po.Backends = map[string]BackendOverlay{}
		}
		var err error
		switch {
		case item == "policy":
			var p Policy
			if err = strictCheck(value, &p, func() error { return config.CheckPolicy(p.Policy, p.Sticky) }); err == nil {
				po.Policy = &p
			}
		case item == "canary":
			var c config.Canary
			if err = strictCheck(value, &c, func() error { return checkCanary(c) }); err == nil {
				po.Canary = &c
			}
		case strings.HasPrefix(item, "backends/"):
			var u string
			if u, err = url.PathUnescape(strings.TrimPrefix(item, "backends/")); err == nil {
				var o BackendOverlay
				if err = strictCheck(value, &o, func() error { return checkBackendOverlay(u, o) }); err == nil {
					po.Backends[u] = o
				}
			}
		default:
			err = fmt.Errorf("not a key of lbd's fleet state")
		}
		if err != nil {
			probs = append(probs, fmt.Sprintf("%s: %v", key, err))
			continue
		}
		pools[pool] = po
	}
	for name, po := range pools {
		ov = ov.with(name, po)
	}
	return ov, probs
}
