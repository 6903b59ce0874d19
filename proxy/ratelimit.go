package proxy

import (
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// clientLimits holds one token bucket (golang.org/x/time/rate, the
// maintained Go implementation, whose AllowN takes the time as an argument
// so tests drive it without a clock) per client key, in bounded memory.
//
// Keys are client addresses: input an attacker controls. The buckets live in
// shards, each a map plus a recency list under its own mutex, and each shard
// holds at most its share of maxClients: a new key in a full shard evicts
// the shard's least recently used one, and every visit to a shard also
// evicts a few entries idle for longer than idle. A flood of distinct source
// addresses thus costs at most maxClients entries (and evicts the flood's
// own earlier addresses first, since they are the least recent), never more
// memory. Evicting an active client's bucket only forgets its debt: it
// starts again with a full burst.
//
// This is a concurrent data structure on the request path, not an actor: a
// message per request would cost more than the check itself. The shards keep
// the locks short and uncontended.
type clientLimits struct {
	limit      rate.Limit
	burst      int
	idle       time.Duration
	maxClients int // as asked; the shards hold perShard x len(shards)
	perShard   int
	seed       maphash.Seed
	shards     []limitShard
}

type limitShard struct {
	mu  sync.Mutex
	m   map[string]*clientEntry
	lru clientEntry // sentinel of a circular list: lru.next is the most recent
	_   [64]byte    // keep neighbouring shards' locks off one cache line
}

type clientEntry struct {
	key        string
	lim        *rate.Limiter
	seen       time.Time
	prev, next *clientEntry
}

// maxShards bounds the shard count; each shard should hold a useful number
// of clients (minPerShard) so that its LRU order means something.
const (
	maxShards   = 64
	minPerShard = 16
	idleSweep   = 4 // idle entries a visit may evict, so each visit stays O(1)
)

func newClientLimits(perSecond float64, burst, maxClients int, idle time.Duration) *clientLimits {
	n := maxShards
	for n > 1 && maxClients/n < minPerShard {
		n /= 2
	}
	c := &clientLimits{
		limit: rate.Limit(perSecond), burst: max(burst, 1), idle: idle, maxClients: maxClients,
		perShard: max(maxClients/n, 1), seed: maphash.MakeSeed(), shards: make([]limitShard, n),
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.m = make(map[string]*clientEntry)
		s.lru.next, s.lru.prev = &s.lru, &s.lru
	}
	return c
}

// allow takes one token from key's bucket at now. When there is none it
// returns false and how long until there will be one.
func (c *clientLimits) allow(key string, now time.Time) (bool, time.Duration) {
	s := &c.shards[maphash.String(c.seed, key)%uint64(len(c.shards))]
	s.mu.Lock()
	e := s.m[key]
	if e == nil {
		s.evict(now, c.idle, c.perShard-1)
		// Clone: key may be a slice of a large header that must not stay alive.
		e = &clientEntry{key: strings.Clone(key), lim: rate.NewLimiter(c.limit, c.burst)}
		s.m[e.key] = e
	} else {
		s.unlink(e)
		s.evict(now, c.idle, len(s.m))
	}
	e.seen = now
	s.pushFront(e)
	lim := e.lim
	s.mu.Unlock()

	if lim.AllowN(now, 1) {
		return true, 0
	}
	wait := time.Duration((1 - lim.TokensAt(now)) / float64(c.limit) * float64(time.Second))
	return false, max(wait, time.Millisecond)
}

// evict removes least recent entries until at most keep remain, and then
// up to idleSweep more that have been idle too long.
func (s *limitShard) evict(now time.Time, idle time.Duration, keep int) {
	for len(s.m) > max(keep, 0) {
		s.remove(s.lru.prev)
	}
	for range idleSweep {
		last := s.lru.prev
		if last == &s.lru || now.Sub(last.seen) < idle {
			return
		}
		s.remove(last)
	}
}

func (s *limitShard) remove(e *clientEntry) {
	s.unlink(e)
	delete(s.m, e.key)
}

func (s *limitShard) unlink(e *clientEntry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (s *limitShard) pushFront(e *clientEntry) {
	e.prev, e.next = &s.lru, s.lru.next
	s.lru.next.prev = e
	s.lru.next = e
}

// same reports whether c was built with these settings.
func (c *clientLimits) same(perSecond float64, burst, maxClients int, idle time.Duration) bool {
	return c.limit == rate.Limit(perSecond) && c.burst == max(burst, 1) && c.maxClients == maxClients && c.idle == idle
}

// adopt fills c, new and not yet in use, with the clients of old, the most
// recently seen first, while their shards in c have room: each keeps its
// bucket — its debt — now refilling at c's rate up to c's burst (tokens
// above a lower burst are cut to it at the bucket's next use). Clients old
// would have dropped as idle under c's idle time are left behind, and so
// are those beyond c's capacity, the least recent; a client left behind
// starts again with a full burst, as after an eviction. Requests still
// using old meanwhile share the moved buckets (a rate.Limiter is safe for
// concurrent use); a client old first sees after adopt looked at its shard
// gets a fresh bucket in c.
func (c *clientLimits) adopt(old *clientLimits, now time.Time) {
	var es []clientEntry
	for i := range old.shards {
		s := &old.shards[i]
		s.mu.Lock()
		for e := s.lru.next; e != &s.lru; e = e.next {
			if now.Sub(e.seen) < c.idle {
				es = append(es, clientEntry{key: e.key, lim: e.lim, seen: e.seen})
			}
		}
		s.mu.Unlock()
	}
	slices.SortStableFunc(es, func(a, b clientEntry) int { return b.seen.Compare(a.seen) })
	for i := range es {
		e := &es[i]
		s := &c.shards[maphash.String(c.seed, e.key)%uint64(len(c.shards))]
		if len(s.m) >= c.perShard {
			continue
		}
		e.lim.SetLimitAt(now, c.limit)
		e.lim.SetBurstAt(now, c.burst)
		s.m[e.key] = e
		s.pushBack(e)
	}
}

// pushBack links e as the least recent entry.
func (s *limitShard) pushBack(e *clientEntry) {
	e.next, e.prev = &s.lru, s.lru.prev
	s.lru.prev.next = e
	s.lru.prev = e
}

// len returns how many clients are tracked.
func (c *clientLimits) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// capacity is the most clients tracked at once.
func (c *clientLimits) capacity() int { return c.perShard * len(c.shards) }
