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
	m, err := c.query(ctx, servers, dnsmessage.Question{Name: name, Type: dnsmessage.TypeSRV, Class: dnsmessage.ClassINET})
	if err != nil {
		return outcome{}, err
	}
	r := parseAnswer(m, dnsmessage.Question{Name: name, Type: dnsmessage.TypeSRV, Class: dnsmessage.ClassINET})
	recs := lowestPriority(r.srv)
	t := r.ttl

	// One resolution per target, from the additional section when it has
	// the target's addresses, else by queries, a few at a time.
	targets := map[string]*resolved{}
	var order []string
	for _, rec := range recs {
		k := strings.ToLower(rec.Target.String())
		if _, ok := targets[k]; !ok {
			targets[k] = &resolved{name: rec.Target}
			order = append(order, k)
		}
	}
	slices.Sort(order)
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxTargetLookups)
	for _, k := range order {
		res := targets[k]
		if extra, ok := r.extra[k]; ok {
			res.addrs = addrResult{addrs: extra.addrs, ttl: extra.ttl}
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			res.addrs, res.err = c.resolve(ctx, servers, res.name)
		})
	}
	wg.Wait()

	set := newMemberSet(src)
	// Records in a fixed order, so that a URL offered twice keeps the same host.
	slices.SortFunc(recs, func(a, b dnsmessage.SRVResource) int {
		return strings.Compare(strings.ToLower(a.Target.String()), strings.ToLower(b.Target.String()))
	})
	for _, rec := range recs {
		res := targets[strings.ToLower(rec.Target.String())]
		if res.err != nil {
			return outcome{}, fmt.Errorf("SRV target %s: %w", rec.Target, res.err)
		}
		t = t.min(res.addrs.ttl)
		for _, a := range res.addrs.addrs {
			set.add(a, rec.Port, srvWeight(rec.Weight, src.Weight), rec.Target.String())
		}
	}
	return finish(set, r.nx, t), nil
}

// resolved is one SRV target's resolution.
type resolved struct {
	name  dnsmessage.Name
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
