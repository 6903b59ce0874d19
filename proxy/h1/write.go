package h1

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// syncBodyMax is the largest in-memory request body written on the
// request's goroutine before the response is read. Larger ones, and every
// body that is not in memory, are written by a goroutine while the
// response is read: a backend that answers as it reads (an echo) would
// otherwise fill both sockets' buffers and wait for us while we wait for
// it. 64 KiB stays well within the loopback and LAN socket buffers.
const syncBodyMax = 64 << 10

// writerWait is how long a finished response waits for the body writer to
// report, before the connection is given up rather than reused: the
// backend has read the body, so the writer is only a wake-up away.
const writerWait = 50 * time.Millisecond

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

// copyBody writes the request body into the buffered writer: Content-Length
// bytes straight into its buffer, or chunks. flush writes each piece out as
// soon as it was read (a streamed body: the backend may be waiting for
// it). src reports that the error came from reading the body, not from the
// connection.
func (c *conn) copyBody(r *http.Request, f framing, flush bool) (err error, src bool) {
	if f.length < 0 {
		return c.copyChunked(r, flush)
	}
	bw, left := c.bw, f.length
	for left > 0 {
		if bw.Available() == 0 {
			if err := bw.Flush(); err != nil {
				return err, false
			}
		}
		buf := bw.AvailableBuffer()
		buf = buf[:min(int64(cap(buf)), left)]
		n, rerr := r.Body.Read(buf)
		if n > 0 {
			bw.Write(buf[:n])
			left -= int64(n)
			if flush {
				if err := bw.Flush(); err != nil {
					return err, false
				}
			}
		}
		if rerr == io.EOF && left > 0 {
			return fmt.Errorf("h1: request body ended %d bytes short of its Content-Length %d", left, f.length), true
		}
		if rerr != nil && rerr != io.EOF {
			return rerr, true
		}
	}
	return nil, false
}

// chunkBuf is what one read of a chunked body may return.
const chunkBuf = 16 << 10

func (c *conn) copyChunked(r *http.Request, flush bool) (err error, src bool) {
	bp := getChunk()
	defer putChunk(bp)
	buf, bw := *bp, c.bw
	for {
		n, rerr := r.Body.Read(buf)
		if n > 0 {
			bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(n), 16))
			bw.WriteString("\r\n")
			bw.Write(buf[:n])
			bw.WriteString("\r\n")
			if flush {
				if err := bw.Flush(); err != nil {
					return err, false
				}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr, true
		}
	}
	bw.WriteString("0\r\n")
	for k, vv := range r.Trailer { // filled in by now: the body hit EOF
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("h1: invalid trailer field name %q", k), true
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("h1: invalid trailer field value for %q", k), true
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(textproto.TrimString(v))
			bw.WriteString("\r\n")
		}
	}
	bw.WriteString("\r\n")
	return bw.Flush(), false
}

// startBodyWriter writes a streamed request body on its own goroutine
// while the caller reads the response. The goroutine owns the request
// body (it closes it) until the body ends; it reports on writeDone. A body
// that fails to read leaves a request the backend will wait on forever, so
// it closes the connection (the read then fails with that error).
func (c *conn) startBodyWriter(r *http.Request, f framing) {
	done := make(chan error, 1)
	c.writeDone = done
	c.writing.Store(true)
	go func() {
		err, src := c.copyBody(r, f, true)
		closeBody(r)
		c.wmu.Lock()
		if src {
			c.srcErr = err
		}
		if err == nil && !c.headRead && c.t.o.ResponseHeaderTimeout > 0 {
			c.nc.SetReadDeadline(time.Now().Add(c.t.o.ResponseHeaderTimeout))
		}
		c.wmu.Unlock()
		if src {
			c.raw.Close()
		}
		c.writing.Store(false)
		done <- err
	}()
}

// writerDone reports whether the body writer finished without error,
// waiting for it a little (see writerWait).
func (c *conn) writerDone() bool {
	var err error
	select {
	case err = <-c.writeDone:
	default:
		t := time.NewTimer(writerWait)
		select {
		case err = <-c.writeDone:
			t.Stop()
		case <-t.C:
			return false
		}
	}
	c.writeDone = nil
	return err == nil
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
