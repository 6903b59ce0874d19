package daemon

import (
	"net"
	"sync"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// testDNS is a real DNS server (miekg/dns) on 127.0.0.1, UDP and TCP on
// one kernel-chosen port, answering from records the test changes while it
// runs; stop takes it away (a resolver that is down) and the port with it.
type testDNS struct {
	addr string

	mu      sync.Mutex
	records map[dnsKey][]dns.RR
	queries int
	udp     *dns.Server
	tcp     *dns.Server
}

type dnsKey struct {
	name  string
	qtype uint16
}

func startDNS(t *testing.T) *testDNS {
	t.Helper()
	// UDP and TCP on one port: the kernel picks a free UDP port, which a
	// TCP socket (often one of this process's own connections) may hold;
	// then try another.
	var pc net.PacketConn
	var ln net.Listener
	for try := 0; ; try++ {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		require.NoError(t, err)
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		require.Less(t, try, 20, "no port free for both UDP and TCP: %v", err)
	}
	z := &testDNS{addr: pc.LocalAddr().String(), records: map[dnsKey][]dns.RR{}}
	z.udp = &dns.Server{PacketConn: pc, Handler: z}
	z.tcp = &dns.Server{Listener: ln, Handler: z}
	go func() { _ = z.udp.ActivateAndServe() }()
	go func() { _ = z.tcp.ActivateAndServe() }()
	t.Cleanup(z.stop)
	return z
}

// set replaces the records of name and type (text in zone-file form, TTL 1).
func (z *testDNS) set(t *testing.T, name string, qtype uint16, rrs ...string) {
	t.Helper()
	var parsed []dns.RR
	for _, s := range rrs {
		rr, err := dns.NewRR(s)
		require.NoError(t, err)
		parsed = append(parsed, rr)
	}
	z.mu.Lock()
	z.records[dnsKey{dns.CanonicalName(name), qtype}] = parsed
	z.mu.Unlock()
}

// count is how many questions the server has answered.
func (z *testDNS) count() int {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.queries
}

func (z *testDNS) stop() {
	_ = z.udp.Shutdown()
	_ = z.tcp.Shutdown()
}

// ServeDNS answers from the records; a name with no records of any type is NXDOMAIN.
func (z *testDNS) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	z.mu.Lock()
	z.queries++
	q := r.Question[0]
	name := dns.CanonicalName(q.Name)
	m.Answer = append(m.Answer, z.records[dnsKey{name, q.Qtype}]...)
	known := false
	for k := range z.records {
		known = known || k.name == name
	}
	z.mu.Unlock()
	if !known {
		m.Rcode = dns.RcodeNameError
	}
	_ = w.WriteMsg(m)
}
