package proxy

// Requests lbd refuses on sight, before routing, and the headers it sets
// on what it forwards.
//
// net/http's server parses a request before lbd sees it, within
// timeouts.max_header_bytes (431 from net/http itself beyond). What it
// does not bound, lbd does here: the number of header fields (431) and the
// length of the request target (414). CONNECT is refused with 405: lbd
// proxies requests, it does not open tunnels. A request that carries this
// lbd's own Via entry has come back to it (a backend that is lbd itself, or
// a chain that loops): it is answered 508 instead of being multiplied
// until the descriptors run out.
//
// An HTTP/1 request with a chunked body ends its connection: net/http
// drops a Content-Length sent with Transfer-Encoding and reads the body as
// chunked, as RFC 9112 6.1 says, but keeps the connection, and by then
// lbd can no longer tell whether both were sent. The RFC requires the
// connection closed after such a request, since a hop before lbd may have
// framed it by the length and what follows could be a smuggled request;
// lbd closes after every chunked HTTP/1 request, which costs a reconnect
// to the rare HTTP/1 client that streams uploads.

import (
	"net/http"
	"strings"

	"github.com/rs/xid"
)

// Reject reasons of requests refused on sight (X-Lbd-Reject).
const (
	RejectConnect        = "connect-unsupported" // 405
	RejectURITooLong     = "uri-too-long"        // 414
	RejectTooManyHeaders = "too-many-headers"    // 431
	RejectLoop           = "loop"                // 508
)

// allowedMethods is the Allow header of a 405: any method but CONNECT is
// forwarded; these are the registered ones a client can expect.
const allowedMethods = "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, TRACE"

// maxRequestIDLen bounds a client's X-Request-Id.
const maxRequestIDLen = 128

// refuse answers a request lbd does not forward, and reports whether it did.
func (h *Handler) refuse(st *reqState, r *http.Request) bool {
	live := st.live
	switch {
	case r.Method == http.MethodConnect:
		st.Header().Set("Allow", allowedMethods)
		st.reject(http.StatusMethodNotAllowed, RejectConnect, 0)
	case live.MaxURIBytes > 0 && len(r.RequestURI) > live.MaxURIBytes:
		st.reject(http.StatusRequestURITooLong, RejectURITooLong, 0)
	case live.MaxHeaderCount > 0 && headerCount(r.Header, live.MaxHeaderCount) > live.MaxHeaderCount:
		st.reject(http.StatusRequestHeaderFieldsTooLarge, RejectTooManyHeaders, 0)
	case h.cameBack(r.Header):
		st.reject(http.StatusLoopDetected, RejectLoop, 0)
	default:
		return false
	}
	return true
}

// headerCount counts header fields (each value of a repeated name), and
// stops counting past limit.
func headerCount(h http.Header, limit int) int {
	if len(h) > limit {
		return len(h)
	}
	n := 0
	for _, v := range h {
		if n += len(v); n > limit {
			break
		}
	}
	return n
}

// closeAfterChunked ends an HTTP/1 connection after a request with a
// chunked body (see the file comment).
func closeAfterChunked(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 1 && len(r.TransferEncoding) > 0 {
		w.Header().Set("Connection", "close")
	}
}

// requestID returns the request's id: the client's X-Request-Id when it
// sent exactly one that is printable ASCII without spaces and at most 128
// bytes, else a new xid. A client's id ends up in logs and upstream
// headers; one with control characters or of any length could forge log
// lines or bloat every hop.
func requestID(h http.Header) string {
	if v := h["X-Request-Id"]; len(v) == 1 && validRequestID(v[0]) {
		return v[0]
	}
	return xid.New().String()
}

func validRequestID(s string) bool {
	if s == "" || len(s) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// via is this lbd's entry in Via headers (RFC 9110 7.6.3): the protocol
// the request arrived with and a pseudonym made of the instance id, which
// says nothing about the host and port lbd listens on.
//
// The entries are kept as one-value header slices shared by every request
// (full, so that an append elsewhere copies): a request with no Via of its
// own gets one without an allocation.
type via struct {
	pseudonym          string
	http10, http11, h2 []string
}

func newVia(instance string) via {
	p := "lbd-" + instance
	one := func(s string) []string { return []string{s}[:1:1] }
	return via{pseudonym: p, http10: one("1.0 " + p), http11: one("1.1 " + p), h2: one("2 " + p)}
}

// add appends this lbd's entry, for the protocol r arrived with, to the
// outgoing request's Via.
func (v via) add(out http.Header, r *http.Request) {
	entry := v.http11
	switch {
	case r.ProtoMajor >= 2:
		entry = v.h2
	case r.ProtoMinor == 0:
		entry = v.http10
	}
	if prior := out["Via"]; len(prior) > 0 {
		out["Via"] = append(prior[:len(prior):len(prior)], entry[0])
		return
	}
	out["Via"] = entry
}

// cameBack reports whether the request already went through this lbd.
func (h *Handler) cameBack(hdr http.Header) bool {
	for _, v := range hdr["Via"] {
		if strings.Contains(v, h.via.pseudonym) {
			return true
		}
	}
	return false
}
