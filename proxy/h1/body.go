package h1

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/net/http/httpguts"
)

// errReadAfterClose is what a body read after Close returns (net/http's
// wording).
var errReadAfterClose = errors.New("http: read on closed response body")

type bodyKind uint8

const (
	lengthBody  bodyKind = iota // Content-Length bytes
	chunkedBody                 // chunked coding, then trailers
	untilClose                  // until the backend closes the connection
)

// frame decides how the response's body is delimited (RFC 9112 6.3), as
// net/http does but refusing a response with both Transfer-Encoding and
// Content-Length: the framing a smuggling attempt relies on.
type frame struct {
	kind   bodyKind
	length int64
	none   bool // no body: HEAD, 1xx, 204, 304
	close  bool // the connection ends with this response
}

func frameOf(resp *http.Response, method string) (frame, error) {
	h := resp.Header
	var f frame
	conn := h["Connection"]
	if resp.ProtoMinor == 0 {
		f.close = !httpguts.HeaderValuesContainsToken(conn, "keep-alive") ||
			httpguts.HeaderValuesContainsToken(conn, "close")
	} else if httpguts.HeaderValuesContainsToken(conn, "close") {
		f.close = true
		delete(h, "Connection") // as net/http: the hop is over
	}
	te, chunked := h["Transfer-Encoding"]
	cl, hasCL := h["Content-Length"]
	if chunked && hasCL {
		return f, protoErr("sent both Transfer-Encoding and Content-Length")
	}
	if chunked {
		delete(h, "Transfer-Encoding")
		switch {
		case resp.ProtoMinor == 0: // HTTP/1.0 has no transfer codings (net/http ignores it too)
			chunked = false
		case len(te) != 1 || !strings.EqualFold(te[0], "chunked"):
			return f, protoErr("sent an unsupported Transfer-Encoding %q", te)
		}
	}
	f.length = -1
	if hasCL {
		n, err := parseLength(cl)
		if err != nil {
			return f, err
		}
		if len(cl) > 1 {
			h["Content-Length"] = cl[:1]
		}
		f.length = n
	}
	code := resp.StatusCode
	switch {
	case method == http.MethodHead:
		f.none = true
		resp.ContentLength = f.length // what a GET would have had
	case code < 200 || code == http.StatusNoContent || code == http.StatusNotModified:
		f.none = true
		resp.ContentLength = 0
	case chunked:
		f.kind = chunkedBody
		resp.ContentLength = -1
	case f.length >= 0:
		f.kind = lengthBody
		f.none = f.length == 0
		resp.ContentLength = f.length
	default:
		f.kind, f.close = untilClose, true
		resp.ContentLength = -1
	}
	if chunked {
		resp.TransferEncoding = []string{"chunked"}
		tr, err := announcedTrailer(h)
		if err != nil {
			return f, err
		}
		resp.Trailer = tr
	}
	resp.Close = f.close
	return f, nil
}

// parseLength reads Content-Length: digits only, every copy the same.
func parseLength(vv []string) (int64, error) {
	for _, v := range vv[1:] {
		if v != vv[0] {
			return 0, protoErr("sent differing Content-Length values %q", vv)
		}
	}
	v := vv[0]
	n, err := strconv.ParseUint(v, 10, 63) // digits only: no sign, no space
	if err != nil {
		return 0, protoErr("sent a bad Content-Length %q", v)
	}
	return int64(n), nil
}

// announcedTrailer turns the Trailer header into Response.Trailer's keys
// (with nil values until the trailer arrives) and removes it, as net/http
// does; ReverseProxy announces them to the client from there.
func announcedTrailer(h http.Header) (http.Header, error) {
	vv, ok := h["Trailer"]
	if !ok {
		return nil, nil
	}
	delete(h, "Trailer")
	var tr http.Header
	for _, v := range vv {
		for k := range strings.SplitSeq(v, ",") {
			k = http.CanonicalHeaderKey(strings.TrimSpace(k))
			switch k {
			case "":
				continue
			case "Transfer-Encoding", "Trailer", "Content-Length":
				return nil, protoErr("announced a forbidden trailer field %q", k)
			}
			if tr == nil {
				tr = make(http.Header)
			}
			tr[k] = nil
		}
	}
	return tr, nil
}

// setBody gives resp its body. broken says the request could not be
// written whole: the connection must not be reused.
func (c *conn) setBody(resp *http.Response, req *http.Request, broken bool) error {
	f, err := frameOf(resp, req.Method)
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		c.clearDeadline()
		resp.Body = &upgradeBody{c: c}
		return nil
	}
	if !f.none && (f.kind != lengthBody || int64(c.rd.br.Buffered()) < f.length) {
		c.clearDeadline() // a read may wait for the body
	}
	reuse := !f.close && !req.Close && !broken
	if f.none {
		resp.Body = http.NoBody
		c.finish(reuse)
		return nil
	}
	b := &body{c: c, rd: &c.rd, resp: resp, kind: f.kind, left: f.length, reuse: reuse}
	if f.kind == chunkedBody {
		b.chunks = httputil.NewChunkedReader(c.rd.br)
	}
	resp.Body = b
	return nil
}

// body is a response body on a pooled connection. Read and Close come from
// the caller; Close may race a Read (to cut a download short), so the end
// of the body is decided once, by whichever sees it first.
type body struct {
	c      *conn
	rd     *reader
	resp   *http.Response
	kind   bodyKind
	left   int64     // lengthBody: bytes still to come
	chunks io.Reader // chunkedBody: net/http's own chunked decoder
	reuse  bool
	err    error // sticky, owned by the reading goroutine
	ended  atomic.Bool
}

func (b *body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.ended.Load() {
		return 0, errReadAfterClose
	}
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var err error
	switch b.kind {
	case lengthBody:
		if int64(len(p)) > b.left {
			p = p[:b.left]
		}
		n, err = b.rd.br.Read(p)
		b.left -= int64(n)
		if b.left == 0 {
			return n, b.end()
		}
		if err == io.EOF {
			err = protoErr("closed the connection %d bytes before the end of the body: %w", b.left, io.ErrUnexpectedEOF)
		}
	case chunkedBody:
		n, err = b.chunks.Read(p)
		if err == io.EOF {
			return n, b.end()
		}
		if err != nil && !errors.Is(err, errReadAfterClose) && !b.c.aborted.Load() {
			err = protoErr("sent a broken chunked body: %w", err)
		}
	default:
		n, err = b.rd.br.Read(p)
		if err == io.EOF {
			return n, b.end()
		}
	}
	if err != nil {
		return n, b.fail(err)
	}
	return n, nil
}

// end is the body's EOF: the trailer of a chunked body is read into
// Response.Trailer, then the connection is finished.
func (b *body) end() error {
	if b.kind == chunkedBody {
		tr, err := b.rd.readTrailer()
		if err != nil {
			return b.fail(err)
		}
		if b.resp.Trailer == nil {
			b.resp.Trailer = tr
		} else {
			for k, vv := range tr {
				b.resp.Trailer[k] = vv
			}
		}
	}
	b.err = io.EOF
	if b.ended.CompareAndSwap(false, true) {
		b.c.finish(b.reuse && b.kind != untilClose)
	}
	return io.EOF
}

func (b *body) fail(err error) error {
	b.err = b.c.mapErr(err)
	if b.ended.CompareAndSwap(false, true) {
		b.c.stopAbort()
		b.c.close(true)
	}
	return b.err
}

// Close ends the body; before its end, the connection is closed.
func (b *body) Close() error {
	if b.ended.CompareAndSwap(false, true) {
		b.c.abandon()
	}
	return nil
}

// upgradeBody is the body of a 101 Switching Protocols response: the
// connection itself, which has left the pool for good. Bytes the backend
// sent right after its 101 are in the reader's buffer and come first.
type upgradeBody struct {
	c      *conn
	closed atomic.Bool
}

func (b *upgradeBody) Read(p []byte) (int, error) {
	if br := b.c.rd.br; br != nil && br.Buffered() > 0 {
		return br.Read(p[:min(len(p), br.Buffered())])
	}
	return b.c.nc.Read(p)
}

func (b *upgradeBody) Write(p []byte) (int, error) { return b.c.nc.Write(p) }

func (b *upgradeBody) Close() error {
	if !b.closed.CompareAndSwap(false, true) {
		return nil
	}
	b.c.stopAbort()
	if err := b.c.nc.Close(); err != nil {
		return fmt.Errorf("h1: closing upgraded connection: %w", err)
	}
	return nil
}
