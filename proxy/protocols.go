package proxy

// What a request's protocol asks of the proxy before it is forwarded.
//
//   - HTTP/1.1 bodies stream both ways at once. Go's server by default reads
//     and discards the rest of an HTTP/1 request body as soon as the handler
//     starts its response; a proxy must not, since the backend may answer
//     while the upload still streams to it (an echo, a gRPC-Web call, an
//     early 413), so full duplex is turned on for requests with a body.
//     HTTP/2 streams are always full duplex.
//   - "Expect: 100-continue" is answered by lbd, not forwarded, as nginx and
//     Envoy do by default. Forwarded, it made Go's transport withhold the
//     body when the backend answered before asking for it (a streaming
//     echo), and the exchange hung. lbd sends the 100 itself once the
//     request is admitted, just before forwarding it: Go's server would send
//     it on the body's first read, but when the backend's response head
//     reaches WriteHeader before the transport's first read of the body,
//     the server sends no 100 at all, and the client never sends the body.
//   - "Upgrade: h2c" is not an upgrade lbd performs: RFC 9113 deprecated it
//     and the standard library serves cleartext HTTP/2 by prior knowledge
//     only. The offer is dropped, so the request is answered in HTTP/1.1
//     (RFC 9110 7.8 lets a server ignore Upgrade) rather than forwarded to a
//     backend that might accept it and tie the client to itself.
//   - Any other upgrade (WebSocket) is admitted by websocket.go.

import (
	"context"
	"errors"
	"net/http"
	"strings"
)

// enter prepares a request for forwarding and gives it its context. ok is
// false when lbd answered it already (an upgrade refused while draining);
// otherwise done must run when the request returns, which for an upgraded
// connection is when the connection closes.
func (h *Handler) enter(w http.ResponseWriter, r *http.Request, st *reqState) (ctx context.Context, done func(), ok bool) {
	st.Context = r.Context()
	ctx = st
	if r.ProtoMajor == 1 && r.Body != nil && r.Body != http.NoBody {
		if err := http.NewResponseController(w).EnableFullDuplex(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			h.log.Debug("full duplex", "req_id", st.id, "err", err)
		}
	}
	if r.Body != nil && r.Body != http.NoBody && hasToken(r.Header["Expect"], "100-continue") {
		st.continue100 = true
	}
	r.Header.Del("Expect")
	dropH2CUpgrade(r.Header)
	if upgradeType(r.Header) == "" {
		return ctx, func() {}, true
	}
	c, end, ok := h.ups.start(ctx)
	if !ok {
		st.reject(http.StatusServiceUnavailable, "draining", 0)
		return nil, nil, false
	}
	st.upgrade = c
	return c.ctx, end, true
}

// upgradeType returns the protocol a request or response asks to switch
// to, or "" when it does not ask (ReverseProxy's own test).
func upgradeType(h http.Header) string {
	if !hasToken(h["Connection"], "upgrade") {
		return ""
	}
	return h.Get("Upgrade")
}

// dropH2CUpgrade removes an "Upgrade: h2c" offer (see the file comment).
func dropH2CUpgrade(h http.Header) {
	if !hasToken(h["Upgrade"], "h2c") {
		return
	}
	var keep []string
	for _, v := range h["Upgrade"] {
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p != "" && !strings.EqualFold(p, "h2c") {
				keep = append(keep, p)
			}
		}
	}
	h.Del("Http2-Settings")
	if len(keep) == 0 {
		h.Del("Upgrade")
		return
	}
	h["Upgrade"] = []string{strings.Join(keep, ", ")}
}

// hasToken reports whether a comma-separated header contains token,
// case-insensitively.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for p := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), token) {
				return true
			}
		}
	}
	return false
}
