package h1

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
)

// What the parser accepts. A response head is a status line, header
// fields and an empty line; the rules are net/http's (ReadResponse and
// textproto.ReadMIMEHeader) with four exceptions that are stricter, since a
// proxy re-frames what it reads for a client and an ambiguous message is
// how responses get split or smuggled (RFC 9112 11.1, 11.2):
//   - no obs-fold: a field line that begins with a space or tab is an error
//     (net/http joins it to the line above);
//   - no whitespace inside a field name, before the colon (net/http keeps
//     such fields, uncanonicalised);
//   - a status code below 100 is an error (net/http returns it, and
//     ReverseProxy's WriteHeader would panic on it);
//   - the version must be HTTP/1.x, and the status line free of control
//     bytes (net/http takes any HTTP/d.d and any reason phrase, which goes
//     to the client on a 101);
//   - limits on the head's bytes and on its number of fields.
//
// Like net/http, head lines may end in CRLF or a bare LF (trailer lines in
// CRLF only, see readLine), and a field value has
// its surrounding spaces and tabs trimmed, and may hold any byte except the
// controls other than HTAB.

// Limits bound what one response head may hold.
type Limits struct {
	MaxHeaderBytes int // status line and fields, line ends included
	MaxHeaders     int // fields (and, separately, trailer fields)
}

// Defaults for Options' zero limits, as Envoy's: 60 KiB of response
// headers (we round to 64) and 100 fields.
const (
	DefaultMaxHeaderBytes = 64 << 10
	DefaultMaxHeaders     = 100
)

// head is a parsed status line and header.
type head struct {
	major, minor int
	code         int
	status       string // "200 OK": code and reason, as http.Response.Status
	header       http.Header
}

// span locates one field of a head in its text.
type span struct{ k0, k1, v0, v1 int32 }

// reader reads heads and trailers from one connection. Its two buffers
// are scratch reused from one response to the next.
type reader struct {
	br     *bufio.Reader
	lim    Limits
	block  []byte // the head's lines, each ending in '\n'
	fields []span
}

var errNoResponse = errors.New("connection closed before any response byte")

// readHead reads one response head. An error before the first byte
// arrived wraps errNoResponse (with io.EOF or the read error), so that the
// caller knows the backend sent nothing at all.
func (r *reader) readHead() (head, error) {
	if err := r.readBlock(true); err != nil {
		return head{}, err
	}
	return r.parseHead()
}

// readBlock reads lines up to and including the empty line into r.block,
// each stored without its line end and followed by '\n'. Field lines are
// checked and their names canonicalised as they come (recorded in
// r.fields), so that parse can cut one string into every key and value.
func (r *reader) readBlock(status bool) error {
	if cap(r.block) > 16<<10 { // one huge head does not make every later one keep its memory
		r.block = nil
	}
	r.block, r.fields = r.block[:0], r.fields[:0]
	first := status
	for {
		line, err := r.readLine(len(r.block), !status)
		if err != nil {
			if errors.Is(err, io.EOF) {
				if status && len(r.block) == 0 && len(line) == 0 {
					return fmt.Errorf("h1: %w: %w", errNoResponse, io.EOF)
				}
				if !status {
					return protoErr("closed the connection in the trailer: %w", io.ErrUnexpectedEOF)
				}
				return protoErr("closed the connection in the middle of a head: %w", io.ErrUnexpectedEOF)
			}
			if status && len(r.block) == 0 && len(line) == 0 {
				return fmt.Errorf("h1: %w: %w", errNoResponse, err)
			}
			return err
		}
		if len(line) == 0 {
			if first { // an empty status line
				return protoErr("sent an empty status line")
			}
			return nil
		}
		off := len(r.block)
		r.block = append(r.block, line...)
		r.block = append(r.block, '\n')
		if first {
			first = false
			continue
		}
		if len(r.fields) >= r.lim.MaxHeaders {
			return protoErr("sent more than %d header fields", r.lim.MaxHeaders)
		}
		s, err := checkField(r.block[off : off+len(line)])
		if err != nil {
			return err
		}
		s.k0, s.k1, s.v0, s.v1 = s.k0+int32(off), s.k1+int32(off), s.v0+int32(off), s.v1+int32(off)
		r.fields = append(r.fields, s)
	}
}

// readLine returns the next line without its CRLF or LF. used is what the
// head holds already: the line must fit in what the limit leaves. crlf
// refuses a bare LF, as in a trailer: it ends a chunked body, whose lines
// net/http too wants in CRLF.
func (r *reader) readLine(used int, crlf bool) ([]byte, error) {
	left := r.lim.MaxHeaderBytes - used
	line, err := r.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull { // longer than the reader's buffer: collect it
		var long []byte
		for err == bufio.ErrBufferFull {
			long = append(long, line...)
			if len(long) > left {
				return nil, protoErr("sent a head of more than %d bytes", r.lim.MaxHeaderBytes)
			}
			line, err = r.br.ReadSlice('\n')
		}
		line = append(long, line...)
	}
	if len(line) > left {
		return nil, protoErr("sent a head of more than %d bytes", r.lim.MaxHeaderBytes)
	}
	if err != nil {
		return line, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	} else if crlf {
		return nil, protoErr("sent a bare LF in the trailer")
	}
	return line, nil
}

// checkField validates one field line, canonicalises its name in place
// and returns where name and value are in it.
func checkField(line []byte) (span, error) {
	if line[0] == ' ' || line[0] == '\t' {
		return span{}, protoErr("sent a folded header line (obs-fold) %s", quote(line))
	}
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return span{}, protoErr("sent a malformed header line %s", quote(line))
	}
	upper := true
	for i, c := range line[:colon] {
		if !tokenByte(c) {
			return span{}, protoErr("sent a malformed header name in %s", quote(line))
		}
		switch {
		case upper && 'a' <= c && c <= 'z':
			line[i] = c - ('a' - 'A')
		case !upper && 'A' <= c && c <= 'Z':
			line[i] = c + ('a' - 'A')
		}
		upper = c == '-'
	}
	v0, v1 := colon+1, len(line)
	for v0 < v1 && (line[v0] == ' ' || line[v0] == '\t') {
		v0++
	}
	for v1 > v0 && (line[v1-1] == ' ' || line[v1-1] == '\t') {
		v1--
	}
	for _, c := range line[v0:v1] {
		if !valueByte(c) {
			return span{}, protoErr("sent a control byte in header line %s", quote(line))
		}
	}
	return span{k0: 0, k1: int32(colon), v0: int32(v0), v1: int32(v1)}, nil
}

// parseHead parses the block readBlock read: the status line, then the
// fields, all cut from one string.
func (r *reader) parseHead() (head, error) {
	nl := bytes.IndexByte(r.block, '\n')
	line := r.block[:nl]
	var h head
	var ok bool
	if h.major, h.minor, ok = parseVersion(line); !ok {
		if bytes.HasPrefix(line, []byte("HTTP/")) {
			return head{}, protoErr("sent a status line not of HTTP/1.x %s", quote(line))
		}
		return head{}, protoErr("sent a malformed status line %s", quote(line))
	}
	rest := line[len("HTTP/1.x"):]
	if len(rest) == 0 || rest[0] != ' ' {
		return head{}, protoErr("sent a malformed status line %s", quote(line))
	}
	st := len("HTTP/1.x")
	for st < len(line) && line[st] == ' ' {
		st++
	}
	code := line[st:]
	if i := bytes.IndexByte(code, ' '); i >= 0 {
		code = code[:i]
	}
	if len(code) != 3 || !digit(code[0]) || !digit(code[1]) || !digit(code[2]) || code[0] == '0' {
		return head{}, protoErr("sent a malformed status code in %s", quote(line))
	}
	h.code = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	for _, c := range line[st:] {
		if !valueByte(c) {
			return head{}, protoErr("sent a control byte in status line %s", quote(line))
		}
	}
	s := string(r.block)
	h.status = s[st:nl]
	h.header = r.fieldMap(s)
	return h, nil
}

// fieldMap builds the header of r.fields, every key and value a substring
// of s (the block as one string): one string and one slice of values,
// whatever the number of fields, in a map given back by ReuseHeader or a
// new one.
func (r *reader) fieldMap(s string) http.Header {
	h, _ := headers.Get().(http.Header)
	if h == nil {
		h = make(http.Header, len(r.fields))
	}
	values := make([]string, len(r.fields))
	for i, f := range r.fields {
		k, v := s[f.k0:f.k1], s[f.v0:f.v1]
		if vv, ok := h[k]; ok {
			h[k] = append(vv, v)
			continue
		}
		values[i] = v
		h[k] = values[i : i+1 : i+1]
	}
	return h
}

// headers holds emptied header maps for the next responses (ReuseHeader).
var headers sync.Pool

// ReuseHeader gives a response's header map back for a later response of
// any Transport to fill, and saves that response the map's allocation. The
// caller must be done with it: nothing may read or write the map after
// the call (values taken from it stay valid: they are never reused).
func ReuseHeader(h http.Header) {
	if h == nil || len(h) > 4*DefaultMaxHeaders/10 {
		return // a large map would stay large in the pool
	}
	clear(h)
	headers.Put(h)
}

// readTrailer reads the fields after the last chunk of a chunked body.
func (r *reader) readTrailer() (http.Header, error) {
	if err := r.readBlock(false); err != nil {
		return nil, err
	}
	if len(r.fields) == 0 {
		return nil, nil
	}
	return r.fieldMap(string(r.block)), nil
}

// parseVersion accepts "HTTP/1.0" to "HTTP/1.9" at the start of line; a
// minor version above 1 is read as 1.1 (RFC 9110 2.5).
func parseVersion(line []byte) (major, minor int, ok bool) {
	if len(line) < len("HTTP/1.x") || string(line[:len("HTTP/1.")]) != "HTTP/1." || !digit(line[7]) {
		return 0, 0, false
	}
	return 1, int(line[7] - '0'), true
}

func digit(c byte) bool { return '0' <= c && c <= '9' }

// tokenByte reports whether c may appear in a field name (RFC 9110 5.6.2).
func tokenByte(c byte) bool {
	const mask = 0 |
		(1<<10-1)<<'0' |
		(1<<26-1)<<'a' |
		(1<<26-1)<<'A' |
		1<<'!' | 1<<'#' | 1<<'$' | 1<<'%' | 1<<'&' | 1<<'\'' | 1<<'*' |
		1<<'+' | 1<<'-' | 1<<'.' | 1<<'^' | 1<<'_' | 1<<'`' | 1<<'|' | 1<<'~'
	return ((uint64(1)<<c)&(mask&(1<<64-1)) |
		(uint64(1)<<(c-64))&(mask>>64)) != 0
}

// valueByte reports whether c may appear in a field value: VCHAR, SP,
// HTAB and obs-text, not the other controls (RFC 9110 5.5).
func valueByte(c byte) bool {
	return c >= 0x20 && c != 0x7f || c == '\t'
}
