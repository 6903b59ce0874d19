package h1

import (
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// syncBodyMax is the largest in-memory request body written on the
// request's goroutine before the response is read. Larger ones, and every
// body that is not in memory, are written by a goroutine while the
// response is read: a backend that answers as it reads (an echo) would
// otherwise fill both sockets' buffers and wait for us while we wait for
// it. 64 KiB stays well within the loopback and LAN socket buffers.
const syncBodyMax = 64 << 10

// framing is how a request's body is sent.
type framing struct {
	hasBody bool
	length  int64 // bytes of body; -1: chunked
	stream  bool  // written by a goroutine while the response is read
}

// framingOf decides the request's framing as net/http does: a body with a
// known length goes with Content-Length, any other with chunked coding. A
// body with GetBody is in memory (it can be produced again); only a small
// one is written before the response is read.
func framingOf(r *http.Request) framing {
	if r.Body == nil || r.Body == http.NoBody {
		return framing{}
	}
	if r.ContentLength > 0 {
		return framing{hasBody: true, length: r.ContentLength,
			stream: r.GetBody == nil || r.ContentLength > syncBodyMax}
	}
	return framing{hasBody: true, length: -1, stream: true}
}

// writeHead writes the request line and header into the buffered writer.
// Its errors are the request's own (an invalid header, method or host);
// write errors surface at the flush.
func (c *conn) writeHead(r *http.Request, f framing) error {
	method := r.Method
	if method == "" {
		method = http.MethodGet
	} else if !validMethod(method) {
		return fmt.Errorf("h1: invalid method %q", method)
	}
	host := r.Host
	if host == "" {
		host = r.URL.Host
	}
	if i := strings.IndexByte(host, '%'); i >= 0 && strings.HasPrefix(host, "[") { // an IPv6 zone is local to us
		if j := strings.IndexByte(host[i:], ']'); j >= 0 {
			host = host[:i] + host[i+j:]
		}
	}
	if !httpguts.ValidHostHeader(host) {
		return fmt.Errorf("h1: invalid Host header %q", host)
	}
	bw := c.bw
	bw.WriteString(method)
	bw.WriteByte(' ')
	if err := writeURI(c, r.URL, method, host); err != nil {
		return err
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")
	if ua, ok := r.Header["User-Agent"]; !ok {
		bw.WriteString("User-Agent: Go-http-client/1.1\r\n")
	} else if len(ua) > 0 && ua[0] != "" { // ReverseProxy sets "" for "send none"
		if !httpguts.ValidHeaderFieldValue(ua[0]) {
			return errors.New("h1: invalid User-Agent header value")
		}
		bw.WriteString("User-Agent: ")
		bw.WriteString(textproto.TrimString(ua[0]))
		bw.WriteString("\r\n")
	}
	for k, vv := range r.Header {
		switch k {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("h1: invalid header field name %q", k)
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("h1: invalid header field value for %q", k)
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(textproto.TrimString(v))
			bw.WriteString("\r\n")
		}
	}
	if r.Close && !httpguts.HeaderValuesContainsToken(r.Header["Connection"], "close") {
		bw.WriteString("Connection: close\r\n")
	}
	switch {
	case f.length > 0:
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), f.length, 10))
		bw.WriteString("\r\n")
	case f.length < 0:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
		if err := writeTrailerKeys(c, r.Trailer); err != nil {
			return err
		}
	case method != http.MethodGet && method != http.MethodHead:
		bw.WriteString("Content-Length: 0\r\n") // many servers want one on a bodiless POST, PUT...
	}
	_, err := bw.WriteString("\r\n")
	_ = err // a write error is the flush's to report
	return nil
}

// writeURI writes the request target (URL.RequestURI without building it).
func writeURI(c *conn, u *url.URL, method, host string) error {
	bw := c.bw
	switch {
	case method == http.MethodConnect && u.Path == "" && u.Opaque == "":
		bw.WriteString(host)
		return nil
	case u.Opaque != "":
		if strings.HasPrefix(u.Opaque, "//") {
			bw.WriteString(u.Scheme)
			bw.WriteByte(':')
		}
		if !cleanURI(u.Opaque) {
			return errors.New("h1: control character or space in the request URL")
		}
		bw.WriteString(u.Opaque)
	default:
		p := u.EscapedPath()
		if p == "" {
			p = "/"
		}
		if !cleanURI(p) {
			return errors.New("h1: control character or space in the request URL")
		}
		bw.WriteString(p)
	}
	if u.ForceQuery || u.RawQuery != "" {
		if !cleanURI(u.RawQuery) {
			return errors.New("h1: control character or space in the request URL")
		}
		bw.WriteByte('?')
		bw.WriteString(u.RawQuery)
	}
	return nil
}

// cleanURI reports whether s can go into a request line: a space or a
// control byte would end it early or split it.
func cleanURI(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

func writeTrailerKeys(c *conn, tr http.Header) error {
	if len(tr) == 0 {
		return nil
	}
	keys := make([]string, 0, len(tr))
	for k := range tr {
		k = http.CanonicalHeaderKey(k)
		switch k {
		case "Transfer-Encoding", "Trailer", "Content-Length":
			return fmt.Errorf("h1: invalid Trailer key %q", k)
		}
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("h1: invalid Trailer key %q", k)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	c.bw.WriteString("Trailer: ")
	c.bw.WriteString(strings.Join(keys, ","))
	c.bw.WriteString("\r\n")
	return nil
}

// validMethod reports whether m is a token (RFC 9110 9.1).
func validMethod(m string) bool {
	for i := 0; i < len(m); i++ {
		if !tokenByte(m[i]) {
			return false
		}
	}
	return true
}
