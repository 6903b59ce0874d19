package discovery

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// Sentinel errors of a lookup, for callers that branch on why it failed.
var (
	// ErrServFail: the server answered SERVFAIL (it could not resolve the name now).
	ErrServFail = errors.New("server failure (SERVFAIL)")
	// ErrRefused: the server answered REFUSED (it will not resolve for us).
	ErrRefused = errors.New("query refused (REFUSED)")
	// errTruncated: the UDP answer had the TC bit; ask again over TCP.
	errTruncated = errors.New("truncated answer")
)

const (
	// udpPayload is the EDNS0 payload size we advertise: the DNS Flag Day
	// 2020 value, which avoids IP fragmentation on every common path.
	udpPayload = 1232
	// udpBuffer is larger than udpPayload for servers that ignore EDNS0's
	// limit; a datagram cut short by a small buffer would read as garbage.
	udpBuffer = 4096
	// DefaultResolvConf is where the system's nameservers are read from.
	DefaultResolvConf = "/etc/resolv.conf"
)

// client asks DNS servers one question at a time.
type client struct {
	resolver   string        // IP:port from the config; "" = resolvConf's nameservers
	resolvConf string        // path of resolv.conf
	timeout    time.Duration // bound of one exchange with one server
}

// servers returns the servers to ask, in order.
func (c *client) servers() []string {
	if c.resolver != "" {
		return []string{c.resolver}
	}
	return readResolvConf(c.resolvConf)
}

// readResolvConf returns the nameservers of the resolv.conf at path, as
// host:53, or Go's defaults when the file has none or cannot be read.
func readResolvConf(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return []string{"127.0.0.1:53", "[::1]:53"}
	}
	defer f.Close()
	return parseResolvConf(f)
}

// parseResolvConf reads nameserver lines; other lines, and addresses that do
// not parse, are skipped (glibc does the same).
func parseResolvConf(r io.Reader) []string {
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		if a, err := netip.ParseAddr(f[1]); err == nil {
			out = append(out, netip.AddrPortFrom(a, 53).String())
		}
	}
	if len(out) == 0 {
		return []string{"127.0.0.1:53", "[::1]:53"}
	}
	return out
}

// query asks servers in turn until one gives an answer (NOERROR or
// NXDOMAIN); otherwise it returns the last server's error.
func (c *client) query(ctx context.Context, servers []string, q dnsmessage.Question) (*dnsmessage.Message, error) {
	err := errors.New("no DNS server to ask")
	for _, s := range servers {
		var m *dnsmessage.Message
		m, err = c.exchange(ctx, s, q)
		if err == nil {
			err = rcodeError(m.Header.RCode)
		}
		if err == nil {
			return m, nil
		}
		err = fmt.Errorf("%s %s via %s: %w", strings.TrimPrefix(q.Type.String(), "Type"), q.Name, s, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, err
}

// rcodeError maps the response codes that are not an answer to errors.
func rcodeError(rc dnsmessage.RCode) error {
	switch rc {
	case dnsmessage.RCodeSuccess, dnsmessage.RCodeNameError:
		return nil
	case dnsmessage.RCodeServerFailure:
		return ErrServFail
	case dnsmessage.RCodeRefused:
		return ErrRefused
	}
	return fmt.Errorf("server answered %s", rc)
}

// exchange asks one server over UDP, and again over TCP when the UDP
// answer is truncated, within c.timeout.
func (c *client) exchange(ctx context.Context, server string, q dnsmessage.Question) (*dnsmessage.Message, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	id := uint16(rand.Uint32()) // the global source is seeded from the OS: IDs are not guessable
	msg, err := buildQuery(id, q)
	if err != nil {
		return nil, err
	}
	m, err := roundTrip(ctx, "udp", server, id, q, msg)
	if errors.Is(err, errTruncated) {
		m, err = roundTrip(ctx, "tcp", server, id, q, msg)
	}
	return m, err
}

// buildQuery packs a recursive query for q with an EDNS0 OPT record.
func buildQuery(id uint16, q dnsmessage.Question) ([]byte, error) {
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), dnsmessage.Header{ID: id, RecursionDesired: true})
	b.EnableCompression()
	var opt dnsmessage.ResourceHeader
	err := errors.Join(
		b.StartQuestions(), b.Question(q), b.StartAdditionals(),
		opt.SetEDNS0(udpPayload, dnsmessage.RCodeSuccess, false),
	)
	if err == nil {
		err = b.OPTResource(opt, dnsmessage.OPTResource{})
	}
	if err != nil {
		return nil, fmt.Errorf("building the query for %s: %w", q.Name, err)
	}
	return b.Finish()
}

// roundTrip sends msg to server over network (udp or tcp) and returns the
// response to it: one with our ID and our question. Over UDP other datagrams
// are skipped (a late answer to an earlier query, or a spoof attempt).
func roundTrip(ctx context.Context, network, server string, id uint16, q dnsmessage.Question, msg []byte) (*dnsmessage.Message, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// Stop unblocks a read in flight at once instead of at the deadline.
	defer context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })()

	if network == "tcp" {
		return tcpRoundTrip(conn, id, q, msg)
	}
	if _, err := conn.Write(msg); err != nil {
		return nil, err
	}
	buf := make([]byte, udpBuffer)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return nil, err
		}
		m, err := response(buf[:n], id, q, true)
		if err == errNotOurs {
			continue
		}
		return m, err
	}
}

func tcpRoundTrip(conn net.Conn, id uint16, q dnsmessage.Question, msg []byte) (*dnsmessage.Message, error) {
	out := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(msg)), uint16(len(msg)))
	if _, err := conn.Write(append(out, msg...)); err != nil {
		return nil, err
	}
	var l [2]byte
	if _, err := io.ReadFull(conn, l[:]); err != nil {
		return nil, fmt.Errorf("reading the TCP answer: %w", err)
	}
	buf := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(conn, buf); err != nil {
		return nil, fmt.Errorf("reading the TCP answer: %w", err)
	}
	m, err := response(buf, id, q, false)
	if err == errNotOurs {
		return nil, errors.New("the TCP answer is not for our query")
	}
	return m, err
}

// errNotOurs marks a message that answers some other query.
var errNotOurs = errors.New("not our answer")

// response decodes buf if it answers query id for q: errNotOurs if it does
// not, errTruncated if it is a truncated answer over UDP.
func response(buf []byte, id uint16, q dnsmessage.Question, udp bool) (*dnsmessage.Message, error) {
	var p dnsmessage.Parser
	h, err := p.Start(buf)
	if err != nil || !h.Response || h.ID != id {
		return nil, errNotOurs
	}
	if h.Truncated && udp {
		// Enough to go to TCP, where the answer is checked in full: the
		// question of a truncated answer may be cut short itself.
		return nil, errTruncated
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) != 1 || qs[0].Type != q.Type || qs[0].Class != q.Class ||
		!strings.EqualFold(qs[0].Name.String(), q.Name.String()) {
		return nil, errNotOurs
	}
	var m dnsmessage.Message
	if err := m.Unpack(buf); err != nil {
		return nil, fmt.Errorf("malformed answer: %w", err)
	}
	return &m, nil
}
