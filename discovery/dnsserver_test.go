package discovery

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// testDNS is a real DNS server (miekg/dns) on 127.0.0.1, UDP and TCP on one
// kernel-chosen port, serving records the test changes while it runs. It is
// started outside any synctest bubble: its goroutines block on the network
// and are none of the bubble's business.
type testDNS struct {
	t    testing.TB
	addr string

	mu       sync.Mutex
	udp, tcp *dns.Server
	answer   map[rrKey][]dns.RR // answer section per question
	extra    map[rrKey][]dns.RR // additional section per question
	rcode    map[rrKey]int      // a forced response code
	soaTTL   uint32             // negative-answer TTL; 0: no SOA
	truncate bool               // UDP answers are empty with TC set
	drop     bool               // no answer at all
	queries  []query

	// ctl runs functions on a goroutine started outside any synctest
	// bubble, so that a server restarted from a test inside a bubble does
	// not put its goroutines in it.
	ctl     chan func() error
	ctlDone chan error // made outside too: a bubble's channel must not be used from outside it
}

type rrKey struct {
	name  string
	qtype uint16
}

// query is one question the server saw.
type query struct {
	network, name string
	qtype         uint16
}

func key(name string, qtype uint16) rrKey { return rrKey{dns.CanonicalName(name), qtype} }

// startDNS starts a server and stops it when the test ends.
func startDNS(t testing.TB) *testDNS {
	t.Helper()
	z := &testDNS{t: t, answer: map[rrKey][]dns.RR{}, extra: map[rrKey][]dns.RR{}, rcode: map[rrKey]int{}, ctl: make(chan func() error), ctlDone: make(chan error)}
	go func() {
		for f := range z.ctl {
			z.ctlDone <- f()
		}
	}()
	t.Cleanup(func() { close(z.ctl) })
	// The kernel picks the UDP port; TCP must get the same one, which a
	// rare race may have taken: try again then.
	for range 10 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		require.NoError(t, err)
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			continue
		}
		z.addr = pc.LocalAddr().String()
		z.serve(pc, l)
		t.Cleanup(z.stop)
		return z
	}
	t.Fatal("no port free for both UDP and TCP")
	return nil
}

func (z *testDNS) serve(pc net.PacketConn, l net.Listener) {
	z.mu.Lock()
	defer z.mu.Unlock()
	var ready sync.WaitGroup
	ready.Add(2)
	z.udp = &dns.Server{PacketConn: pc, Handler: z, NotifyStartedFunc: ready.Done}
	z.tcp = &dns.Server{Listener: l, Handler: z, NotifyStartedFunc: ready.Done}
	for _, s := range []*dns.Server{z.udp, z.tcp} {
		go func() { _ = s.ActivateAndServe() }()
	}
	ready.Wait()
}

// stop shuts the server down: its port refuses queries (ICMP unreachable).
func (z *testDNS) stop() {
	z.mu.Lock()
	udp, tcp := z.udp, z.tcp
	z.udp, z.tcp = nil, nil
	z.mu.Unlock()
	if udp != nil {
		_ = udp.Shutdown()
		_ = tcp.Shutdown()
	}
}

// restart serves again on the same port after stop.
func (z *testDNS) restart() {
	z.ctl <- func() error {
		pc, err := net.ListenPacket("udp", z.addr)
		if err != nil {
			return err
		}
		l, err := net.Listen("tcp", z.addr)
		if err != nil {
			pc.Close()
			return err
		}
		z.serve(pc, l)
		return nil
	}
	require.NoError(z.t, <-z.ctlDone)
}

// set replaces the answer to (name, type) with records in zone-file syntax;
// no records removes the answer (NODATA while the name has others).
func (z *testDNS) set(name string, qtype uint16, rrs ...string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	k := key(name, qtype)
	delete(z.answer, k)
	for _, s := range rrs {
		rr, err := dns.NewRR(s)
		require.NoError(z.t, err, s)
		z.answer[k] = append(z.answer[k], rr)
	}
}

// setExtra sets the additional section of the answer to (name, type).
func (z *testDNS) setExtra(name string, qtype uint16, rrs ...string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	k := key(name, qtype)
	delete(z.extra, k)
	for _, s := range rrs {
		rr, err := dns.NewRR(s)
		require.NoError(z.t, err, s)
		z.extra[k] = append(z.extra[k], rr)
	}
}

// remove drops every record of name: it answers NXDOMAIN.
func (z *testDNS) remove(name string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	for k := range z.answer {
		if k.name == dns.CanonicalName(name) {
			delete(z.answer, k)
		}
	}
}

// forceRcode makes (name, type) answer rc; dns.RcodeSuccess clears it.
func (z *testDNS) forceRcode(name string, qtype uint16, rc int) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if rc == dns.RcodeSuccess {
		delete(z.rcode, key(name, qtype))
		return
	}
	z.rcode[key(name, qtype)] = rc
}

func (z *testDNS) setTruncate(v bool) { z.mu.Lock(); z.truncate = v; z.mu.Unlock() }
func (z *testDNS) setDrop(v bool)     { z.mu.Lock(); z.drop = v; z.mu.Unlock() }
func (z *testDNS) setSOATTL(v uint32) { z.mu.Lock(); z.soaTTL = v; z.mu.Unlock() }

// seen returns the queries so far, as "network TYPE name" strings.
func (z *testDNS) seen() []string {
	z.mu.Lock()
	defer z.mu.Unlock()
	out := make([]string, len(z.queries))
	for i, q := range z.queries {
		out[i] = fmt.Sprintf("%s %s %s", q.network, dns.TypeToString[q.qtype], q.name)
	}
	return out
}

// count is the number of queries for name so far, of any type and network.
func (z *testDNS) count(name string) int {
	n := 0
	for _, q := range z.seen() {
		if strings.HasSuffix(q, " "+dns.CanonicalName(name)) {
			n++
		}
	}
	return n
}

func (z *testDNS) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	if len(r.Question) != 1 {
		return
	}
	q := r.Question[0]
	network := w.RemoteAddr().Network()
	k := key(q.Name, q.Qtype)

	z.mu.Lock()
	z.queries = append(z.queries, query{network, dns.CanonicalName(q.Name), q.Qtype})
	drop, truncate, soaTTL := z.drop, z.truncate, z.soaTTL
	rc, forced := z.rcode[k]
	answer, extra := z.answer[k], z.extra[k]
	exists := false
	for ak := range z.answer {
		exists = exists || ak.name == k.name
	}
	z.mu.Unlock()

	if drop {
		return
	}
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative, m.RecursionAvailable = true, true
	switch {
	case forced:
		m.Rcode = rc
	case !exists:
		m.Rcode = dns.RcodeNameError
	default:
		m.Answer, m.Extra = answer, extra
	}
	if len(m.Answer) == 0 && m.Rcode != dns.RcodeServerFailure && m.Rcode != dns.RcodeRefused && soaTTL > 0 {
		soa, _ := dns.NewRR(fmt.Sprintf("test. %d IN SOA ns.test. admin.test. 1 3600 600 86400 %d", soaTTL, soaTTL))
		m.Ns = []dns.RR{soa}
	}
	if network == "udp" {
		if truncate {
			m.Answer, m.Extra, m.Ns = nil, nil, nil
			m.Truncated = true
		} else {
			size := dns.MinMsgSize
			if opt := r.IsEdns0(); opt != nil {
				size = int(opt.UDPSize())
			}
			m.Truncate(size)
		}
	}
	_ = w.WriteMsg(m)
}
