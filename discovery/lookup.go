package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/lbd/lbd/config"
)

// Results of a lookup: the "result" label of lbd_discovery_lookups_total.
const (
	ResultSuccess  = "success"  // members found
	ResultEmpty    = "empty"    // the name exists but has no usable records
	ResultNXDomain = "nxdomain" // the name does not exist
	ResultTimeout  = "timeout"  // no server answered in time
	ResultServFail = "servfail"
	ResultRefused  = "refused"
	ResultError    = "error" // unreachable server, malformed answer, other response codes
)

var lookupResults = []string{ResultSuccess, ResultEmpty, ResultNXDomain, ResultTimeout, ResultServFail, ResultRefused, ResultError}

// maxTargetLookups bounds the target queries of one SRV lookup in flight.
const maxTargetLookups = 8

// outcome is one lookup's answer: its kind (success, empty or nxdomain),
// the members and the TTL that bounds how long they may be believed.
type outcome struct {
	result  string
	members []Member
	ttl     ttl
}

// classify names a failed lookup's error for metrics.
func classify(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, ErrServFail):
		return ResultServFail
	case errors.Is(err, ErrRefused):
		return ResultRefused
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return ResultTimeout
	}
	return ResultError
}

// lookup resolves src once.
func (c *client) lookup(ctx context.Context, src config.Discovery) (outcome, error) {
	name, err := dnsmessage.NewName(dnsName(src.DNS))
	if err != nil {
		return outcome{}, fmt.Errorf("%q: %w", src.DNS, err)
	}
	servers := c.servers()
	if src.Type == config.DiscoverySRV {
		return c.lookupSRV(ctx, servers, src, name)
	}
	addrs, err := c.resolve(ctx, servers, name)
	if err != nil {
		return outcome{}, err
	}
	set := newMemberSet(src)
	for _, a := range addrs.addrs {
		set.add(a, uint16(src.Port), src.Weight, src.DNS)
	}
	return finish(set, addrs.nx, addrs.ttl), nil
}

// dnsName makes name absolute, as dnsmessage wants it.
func dnsName(name string) string {
	if strings.HasSuffix(name, ".") {
		return name
	}
	return name + "."
}

func (c *client) lookupSRV(ctx context.Context, servers []string, src config.Discovery, name dnsmessage.Name) (outcome, error) {
	q := dnsmessage.Question{Name: name, Type: dnsmessage.TypeSRV, Class: dnsmessage.ClassINET}
	m, err := c.query(ctx, servers, q)
	if err != nil {
		return outcome{}, err
	}
	r := parseAnswer(m, q)
	recs := lowestPriority(r.srv)
	t := r.ttl
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxTargetLookups)

	// One resolution per target, from the additional section when it has
	// the target's addresses, else by queries, a few at a time.
	targets := map[string]*resolved{}
	for _, rec := range recs {
		if _, ok := targets[rec.target]; ok {
			continue
		}
		res := &resolved{}
		targets[rec.target] = res
		if extra, ok := r.extra[rec.target]; ok {
			res.addrs = addrResult{addrs: extra.addrs, ttl: extra.ttl}
			continue
		}
		name, err := dnsmessage.NewName(rec.target)
		if err != nil { // decoded from a name, so it cannot fail; if it does, the lookup fails below
			res.err = err
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			res.addrs, res.err = c.resolve(ctx, servers, name)
		})
	}
	wg.Wait()

	set := newMemberSet(src)
	// Records in a fixed order, so that a URL offered twice keeps the same host.
	slices.SortStableFunc(recs, func(a, b srvRecord) int { return strings.Compare(a.target, b.target) })
	for _, rec := range recs {
		res := targets[rec.target]
		if res.err != nil {
			return outcome{}, fmt.Errorf("SRV target %s: %w", rec.target, res.err)
		}
		t = t.min(res.addrs.ttl)
		for _, a := range res.addrs.addrs {
			set.add(a, rec.port, srvWeight(rec.weight, src.Weight), rec.target)
		}
	}
	return finish(set, r.nx, t), nil
}

// resolved is one SRV target's resolution.
type resolved struct {
	addrs addrResult
	err   error
}

// addrResult is the A and AAAA records of a name.
type addrResult struct {
	addrs []netip.Addr
	nx    bool // both queries said NXDOMAIN
	ttl   ttl
}

// resolve asks for name's A and AAAA records; either failing fails both.
func (c *client) resolve(ctx context.Context, servers []string, name dnsmessage.Name) (addrResult, error) {
	var out addrResult
	nx := true
	for _, typ := range []dnsmessage.Type{dnsmessage.TypeA, dnsmessage.TypeAAAA} {
		q := dnsmessage.Question{Name: name, Type: typ, Class: dnsmessage.ClassINET}
		m, err := c.query(ctx, servers, q)
		if err != nil {
			return addrResult{}, err
		}
		r := parseAnswer(m, q)
		out.addrs = append(out.addrs, r.addrs...)
		out.ttl = out.ttl.min(r.ttl)
		nx = nx && r.nx
	}
	out.nx = nx
	return out, nil
}

// finish turns a member set into the lookup's outcome.
func finish(set *memberSet, nx bool, t ttl) outcome {
	members := set.list()
	switch {
	case len(members) > 0:
		return outcome{result: ResultSuccess, members: members, ttl: t}
	case nx:
		return outcome{result: ResultNXDomain, ttl: t}
	}
	return outcome{result: ResultEmpty, ttl: t}
}
