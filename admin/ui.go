package admin

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

// The status page (GET /ui/): HTML, CSS and JavaScript embedded in the
// binary, no build step and nothing fetched from elsewhere. The files are
// static and hold no secret, so they are served without the bearer token;
// the page asks for it and sends it with every API call it makes.
//
//go:embed ui
var uiFiles embed.FS

func (s *Server) uiRoutes() {
	sub, err := fs.Sub(uiFiles, "ui")
	if err != nil { // the directory is embedded at build time
		panic(err)
	}
	files := http.StripPrefix("/ui/", http.FileServerFS(sub))
	s.mux.Handle("GET /ui/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-cache")
		// Only what the page itself serves: no inline script, no other origin.
		h.Set("Content-Security-Policy", "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	}))
	s.mux.Handle("GET /ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently))
}

// uiAsset reports a request for the status page's own files, which need no token.
func uiAsset(r *http.Request) bool {
	p := r.URL.Path
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		(p == "/ui" || p == "/ui/" || (strings.HasPrefix(p, "/ui/") && path.Clean(p) == p))
}
