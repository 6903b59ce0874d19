// Package discovery keeps a pool's discovered members current: one actor per
// DNS source (a config.Discovery entry) looks its name up on a schedule and
// hands the full member set to a sink, the routing-config owner, which diffs
// it against what it runs and starts or drains backend actors.
//
// # What a source owns
//
// Its last good member set, the TTL of the answer it came from, its
// schedule, its failure and staleness record, and which set the sink has
// acknowledged. Nobody else writes any of it; the sink receives copies
// (Update), /admin/discovery reads an immutable Status the actor publishes,
// and the metrics are written by the actor only.
//
// # Who talks to it
//
// Nobody sends it commands: it acts on its ticks. The lookups and the sink
// calls run on goroutines the actor owns, which report back by message, so
// its mailbox never waits on the network or on the sink; Stop cancels them
// and waits for them.
//
// # The DNS client, and why not net.Resolver
//
// The issue asks for net.Resolver unless it cannot do what is needed. It
// cannot: it returns addresses and SRV records without their TTLs, and
// refreshing "no later than the lowest TTL" needs them. It also folds the
// additional section away (LookupSRV drops it) and hides the difference
// between an empty answer and NXDOMAIN behind one IsNotFound. So the client
// here builds queries and reads answers with golang.org/x/net/dns/dnsmessage,
// over UDP (EDNS0, 1232-byte payload) with a TCP retry when the answer is
// truncated, as RFC 7766 asks.
//
// With resolver empty the servers are the nameserver lines of
// /etc/resolv.conf, read again at every lookup so an edited file is
// followed, tried in order (127.0.0.1:53 and [::1]:53 when there are none,
// as Go's own resolver does). The system path was chosen over a fallback to
// net.Resolver because the fallback would make TTLs, NXDOMAIN-versus-empty
// and the additional section work with one setting and not the other.
// Names are absolute: the search list and /etc/hosts are not consulted (a
// discovery name is a service name, and resolving it the same way on every
// replica matters more than short names).
//
// # Members
//
// SRV: only the records of the lowest priority present count (the others
// are backups, RFC 2782); each target is resolved to its A and AAAA
// addresses from the additional section when it has any, else by queries of
// its own; a member is scheme://ADDR:PORT with ADDR bracketed when IPv6; its
// weight is the record's (0 counts as 1) times the configured weight, capped
// at config.MaxWeight. A target that does not exist (NXDOMAIN, no address)
// adds no member; a target whose lookup fails fails the whole lookup, so a
// flaky resolver cannot shave members off one by one. A: every A and AAAA
// address with the configured port and weight. For https members the TLS
// server name is server_name, else the SRV target (or the A name), since the
// certificate names the host, not its address. Members are sorted by address
// then port, and one URL appears once (with the highest weight offered).
//
// # Schedule
//
// Lookups start on the actor's ticks (every 100ms). After an answer the
// next lookup is due min(refresh, lowest TTL) after the previous one
// started, less one tick (so that the tick that starts it is not late) and
// less up to 10% jitter, and never sooner than config.MinDiscoveryRefresh,
// which wins over a shorter TTL (a negative answer's TTL is its SOA's, RFC
// 2308). After a failure the next one is due after a backoff that starts at
// the floor and doubles, capped at refresh. One lookup runs at a time.
//
// # Failure semantics
//
// A failing lookup (timeout, SERVFAIL, REFUSED, resolver unreachable,
// malformed answer) keeps the last good set. An empty answer or NXDOMAIN is
// believed only when the next lookup says so too (with no failure between),
// so one bad answer cannot empty a pool; this holds for the first lookup
// too, since the owner may hold members from before. While the set is not
// confirmed by the latest lookup the source is stale: Status.StaleSince, the
// gauge lbd_discovery_stale_since_timestamp_seconds, and one log line when
// it becomes stale and one when it recovers say since when.
//
// # Delivery
//
// The sink gets the full set, never a delta, at the first believed answer
// and at every change. If it fails, the same (latest) set is offered again
// on the next tick; a newer set replaces an undelivered one, which is
// harmless because each Update is complete.
package discovery
