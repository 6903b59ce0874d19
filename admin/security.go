package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// ServeHTTP checks the bearer token, limits the body and answers the mux's
// own 404 and 405 in API.md's JSON error shape (the Allow header stays).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if want := s.token.Load(); want != nil && !probe(r) && !uiAsset(r) && !authorized(r, want) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="lbd-admin"`)
		writeError(w, http.StatusUnauthorized, "Authorization: a valid bearer token is required (Authorization: Bearer TOKEN)")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.o.MaxBodyBytes)
	if _, pattern := s.mux.Handler(r); pattern == "" {
		// No route matched: the mux answers 404, 405 or a redirect as text;
		// errors become JSON.
		s.mux.ServeHTTP(&jsonErrors{ResponseWriter: w}, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// probe reports the unauthenticated liveness and readiness endpoints.
func probe(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && (r.URL.Path == "/healthz" || r.URL.Path == "/readyz")
}

// bearer is the digest of the token the admin API requires.
type bearer struct{ sum [sha256.Size]byte }

// SetToken replaces the bearer token every call but the probes needs ("":
// none), for a reload that re-read the token file; requests that arrive
// after it returns are checked against it, and one being served is not
// interrupted. A caller that could not read the new token must keep the
// old one rather than pass "".
func (s *Server) SetToken(tok string) {
	if tok == "" {
		s.token.Store(nil)
		return
	}
	s.token.Store(&bearer{sum: sha256.Sum256([]byte(tok))})
}

// authorized compares the bearer token in constant time; comparing
// digests keeps the comparison from revealing the token's length.
func authorized(r *http.Request, want *bearer) bool {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(got[:], want.sum[:]) == 1
}

// jsonErrors turns the mux's plain-text error replies into {"error": ...}.
type jsonErrors struct {
	http.ResponseWriter
	replaced bool
}

func (j *jsonErrors) WriteHeader(code int) {
	if code < 400 {
		j.ResponseWriter.WriteHeader(code)
		return
	}
	j.replaced = true
	msg := "no such admin endpoint; see API.md's admin table"
	if code == http.StatusMethodNotAllowed {
		msg = "method not allowed; allowed: " + j.Header().Get("Allow")
	}
	j.Header().Del("X-Content-Type-Options")
	writeError(j.ResponseWriter, code, msg)
}

func (j *jsonErrors) Write(b []byte) (int, error) {
	if j.replaced {
		return len(b), nil // the mux's text body; ours is written
	}
	return j.ResponseWriter.Write(b)
}
