package scheduler

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/lbd/lbd/backendactor"
)

type stickyKind uint8

const (
	stickyOff stickyKind = iota
	stickyIP
	stickyHeader
	stickyCookie
)

type stickyKey struct {
	kind stickyKind
	name string
}

// parseSticky reads config's sticky.key: "ip", "header:NAME" or "cookie:NAME".
func parseSticky(enabled bool, key string) (stickyKey, error) {
	if !enabled {
		return stickyKey{}, nil
	}
	switch kind, name, _ := strings.Cut(key, ":"); {
	case key == "ip" || key == "":
		return stickyKey{kind: stickyIP}, nil
	case kind == "header" && name != "":
		return stickyKey{kind: stickyHeader, name: http.CanonicalHeaderKey(name)}, nil
	case kind == "cookie" && name != "":
		return stickyKey{kind: stickyCookie, name: name}, nil
	}
	return stickyKey{}, fmt.Errorf("sticky key %q: want ip, header:NAME or cookie:NAME", key)
}

func (k stickyKey) String() string {
	switch k.kind {
	case stickyIP:
		return "ip"
	case stickyHeader:
		return "header:" + k.name
	case stickyCookie:
		return "cookie:" + k.name
	}
	return ""
}

func (k stickyKey) key(r *http.Request, client string) (string, bool) {
	switch k.kind {
	case stickyIP:
		return client, client != ""
	case stickyHeader:
		v := r.Header.Get(k.name)
		return v, v != ""
	case stickyCookie:
		if c, err := r.Cookie(k.name); err == nil && c.Value != "" {
			return c.Value, true
		}
	}
	return "", false
}

// rendezvous is highest-random-weight hashing: the key goes to the usable
// backend whose hash with the key scores highest. Adding an N-th backend
// moves only the keys it now wins, about 1/N of them, and a backend that goes
// away moves only its own keys: what hash(key) mod N cannot do. The hash is
// deterministic, so replicas of lbd agree on the mapping.
func (p *Picker) rendezvous(key string, skip []*backendactor.Handle) *backendactor.Handle {
	kh := fnv1a(key)
	var best *backendactor.Handle
	var bestScore uint64
	for i, h := range p.backends {
		if _, ok := usable(h, skip); !ok {
			continue
		}
		if s := mix64(kh ^ p.hashes[i]); best == nil || s > bestScore {
			best, bestScore = h, s
		}
	}
	return best
}

func fnv1a(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// mix64 is splitmix64's finaliser: it spreads nearby inputs over the whole range.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}
